package kafka_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Built once per package run by TestMain.
var (
	// binPath is the consumer binary built from ./cmd/consumer.
	binPath string
	// registryURL is a `consumer dev-registry` process shared by every test
	// (subjects are per topic, and every test has its own topic).
	registryURL string
	// repoRoot is the module's root directory.
	repoRoot string
)

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	_, file, _, _ := runtime.Caller(0)
	repoRoot = filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
	dir, err := os.MkdirTemp("", "authz-kafka-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "test/kafka:", err)
		return 1
	}
	defer os.RemoveAll(dir)

	binPath = filepath.Join(dir, "consumer")
	build := exec.Command("go", "build", "-o", binPath, "./cmd/consumer")
	build.Dir = repoRoot
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "test/kafka: go build ./cmd/consumer: %v\n%s", err, out)
		return 1
	}

	stop, url, err := startRegistry(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "test/kafka:", err)
		return 1
	}
	defer stop()
	registryURL = url
	return m.Run()
}

// startRegistry runs `consumer dev-registry` on a free port and returns its
// URL (the first line it prints).
func startRegistry(dir string) (stop func(), url string, err error) {
	cmd := exec.Command(binPath, "dev-registry", "--listen", "127.0.0.1:0")
	cmd.Env = baseEnv()
	logf, err := os.Create(filepath.Join(dir, "registry.log"))
	if err != nil {
		return nil, "", err
	}
	cmd.Stderr = logf
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	if err := cmd.Start(); err != nil {
		return nil, "", fmt.Errorf("start consumer dev-registry: %w", err)
	}
	stop = func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		logf.Close()
	}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		if sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		for sc.Scan() { // keep draining so the process never blocks on stdout
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	select {
	case l, ok := <-lines:
		if !ok || !strings.HasPrefix(l, "http://") {
			stop()
			return nil, "", fmt.Errorf("consumer dev-registry printed %q, want its URL", l)
		}
		return stop, strings.TrimSpace(l), nil
	case <-ctx.Done():
		stop()
		return nil, "", fmt.Errorf("consumer dev-registry printed no URL within 30s")
	}
}

// baseEnv is this process's environment without any AUTHZ_CONSUMER_*
// setting, so a developer's shell never leaks into the processes under test.
func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AUTHZ_CONSUMER_") {
			env = append(env, kv)
		}
	}
	return env
}
