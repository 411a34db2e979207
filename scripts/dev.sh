#!/usr/bin/env bash
# make dev: build bin/consumer, saying what it downloads and compiles (a
# first run on a cold machine takes minutes), then run `consumer dev`.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
began=$SECONDS

say() { printf 'make dev: %s\n' "$*"; }

say "1/3 Go modules: downloading what go.mod needs into $($GO env GOMODCACHE) (nothing to do when cached)"
fetched=0
while IFS= read -r line; do
	# go mod download -x logs "# get <url>/@v/<version>.zip: 200 OK (<time>)" per module fetched.
	if [[ $line == "# get "*".zip: 200 OK"* ]]; then
		fetched=$((fetched + 1))
		mod=${line#"# get "}
		mod=${mod#https://proxy.golang.org/}
		mod=${mod%%.zip:*}
		printf '  fetched %s\n' "${mod/\/@v\//@}"
	elif [[ $line != "# get "* ]]; then
		printf '  %s\n' "$line"
	fi
done < <($GO mod download -x 2>&1)
say "    $fetched modules fetched ($((SECONDS - began))s)"

total=$($GO list -deps ./cmd/consumer | wc -l)
say "2/3 compiling bin/consumer: up to $total packages (cached ones are skipped; a first build takes a minute or more)"
step=$SECONDS
compiled=0
while IFS= read -r pkg; do
	# go build -v names each package as it compiles it.
	compiled=$((compiled + 1))
	if ((compiled % 25 == 0)); then
		printf '  %d packages compiled (%s) ...\n' "$compiled" "$pkg"
	fi
done < <($GO build -v -o bin/consumer ./cmd/consumer 2>&1)
if [[ ! -x bin/consumer ]]; then
	say "build failed: run \`$GO build ./cmd/consumer\` to see why"
	exit 1
fi
if ((compiled == 0)); then
	say "    every package was cached; linked bin/consumer ($((SECONDS - step))s)"
else
	say "    $compiled packages compiled, bin/consumer linked ($((SECONDS - step))s)"
fi

say "3/3 running bin/consumer dev $* (ready in $((SECONDS - began))s)"
echo
exec bin/consumer dev "$@"
