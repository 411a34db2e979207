package kafka_test

import (
	"archive/zip"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"authz-flag-consumer/internal/testenv"
)

// privateBroker is a single-node KRaft broker of one test, run from the
// jars scripts/kafka.sh caches, on free ports and with its own storage, so
// the test can take it away and bring it back with its data (topics,
// committed offsets) as a real outage would.
type privateBroker struct {
	t     testing.TB
	dir   string
	libs  string
	java  string
	port  int
	props string
	cmd   *exec.Cmd
	done  chan struct{}
}

// newPrivateBroker writes the configuration and formats the storage; the
// broker is not started.
func newPrivateBroker(t testing.TB) *privateBroker {
	t.Helper()
	testenv.SkipShort(t, "a private Kafka broker (a JVM on the jars scripts/kafka.sh fetches)")
	libs := kafkaLibs(t)
	java := "java"
	if home := os.Getenv("JAVA_HOME"); home != "" {
		java = filepath.Join(home, "bin", "java")
	}
	b := &privateBroker{t: t, dir: t.TempDir(), libs: libs, java: java, port: freePort(t)}
	cport := freePort(t)
	b.props = filepath.Join(b.dir, "server.properties")
	conf := fmt.Sprintf(`process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:%[2]d
listeners=PLAINTEXT://127.0.0.1:%[1]d,CONTROLLER://127.0.0.1:%[2]d
advertised.listeners=PLAINTEXT://127.0.0.1:%[1]d
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=%[3]s
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
num.network.threads=2
num.io.threads=2
broker.heartbeat.interval.ms=500
broker.session.timeout.ms=2000
`, b.port, cport, filepath.Join(b.dir, "data"))
	require.NoError(t, os.WriteFile(b.props, []byte(conf), 0o644))
	log4j := fmt.Sprintf(`status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = %s
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%%d] %%p %%m (%%c)%%n
rootLogger.level = info
rootLogger.appenderRef.file.ref = file
`, filepath.Join(b.dir, "server.log"))
	require.NoError(t, os.WriteFile(filepath.Join(b.dir, "log4j2.properties"), []byte(log4j), 0o644))

	storage := "org.apache.kafka.tools.StorageTool"
	if jarHas(filepath.Join(libs, "kafka_2.13-"+strings.TrimPrefix(filepath.Base(libs), "libs-")+".jar"), "kafka/tools/StorageTool.class") {
		storage = "kafka.tools.StorageTool"
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	format := exec.CommandContext(ctx, java, append(b.jvmArgs(), storage, "format", "-t", clusterID(t), "-c", b.props)...)
	out, err := format.CombinedOutput()
	require.NoError(t, err, "kafka storage format: %s", out)
	t.Cleanup(func() {
		b.kill()
		if t.Failed() {
			for _, name := range []string{"server.log", "stdout.log"} {
				log, _ := os.ReadFile(filepath.Join(b.dir, name))
				t.Logf("private broker %s (last lines):\n%s", name, tail(string(log), 25))
			}
		}
	})
	return b
}

func (b *privateBroker) jvmArgs() []string {
	return []string{"-Xms64m", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true",
		"-Dlog4j2.configurationFile=" + filepath.Join(b.dir, "log4j2.properties"),
		"-cp", filepath.Join(b.libs, "*")}
}

func (b *privateBroker) addr() string { return fmt.Sprintf("127.0.0.1:%d", b.port) }

// start runs the broker and waits until it answers metadata requests.
func (b *privateBroker) start() time.Duration {
	b.t.Helper()
	began := time.Now()
	b.cmd = exec.Command(b.java, append(b.jvmArgs(), "kafka.Kafka", b.props)...)
	out, err := os.OpenFile(filepath.Join(b.dir, "stdout.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	require.NoError(b.t, err)
	b.cmd.Stdout, b.cmd.Stderr = out, out
	require.NoError(b.t, b.cmd.Start())
	done := make(chan struct{})
	b.done = done
	go func() { _ = b.cmd.Wait(); out.Close(); close(done) }()
	eventually(b.t, "private Kafka broker on "+b.addr(), func() (bool, string) {
		select {
		case <-done:
			log, _ := os.ReadFile(filepath.Join(b.dir, "server.log"))
			b.t.Fatalf("private Kafka broker exited during start; server.log:\n%s", tail(string(log), 30))
		default:
		}
		// A transport of its own: the shared default one would answer
		// from the metadata it cached before the broker went away.
		tr := &kafka.Transport{}
		defer tr.CloseIdleConnections()
		client := &kafka.Client{Addr: kafka.TCP(b.addr()), Timeout: 2 * time.Second, Transport: tr}
		md, err := client.Metadata(context.Background(), &kafka.MetadataRequest{})
		if err != nil {
			return false, err.Error()
		}
		return len(md.Brokers) > 0 && md.Controller.Host != "", "no broker or controller in metadata yet"
	})
	return time.Since(began)
}

func (b *privateBroker) running() bool {
	select {
	case <-b.done:
		return false
	default:
		return true
	}
}

// kill ends the broker at once (SIGKILL), as a crashed or cut-off broker.
func (b *privateBroker) kill() {
	if b.cmd == nil || b.done == nil {
		return
	}
	select {
	case <-b.done:
		return
	default:
	}
	_ = b.cmd.Process.Signal(syscall.SIGKILL)
	<-b.done
}

// kafkaLibs is the jar directory scripts/kafka.sh fills.
func kafkaLibs(t testing.TB) string {
	t.Helper()
	want := os.Getenv("AUTHZ_KAFKA_VERSION")
	found, _ := filepath.Glob(filepath.Join(repoRoot, ".cache", "kafka", "libs-*", ".complete"))
	sort.Strings(found)
	for i := len(found) - 1; i >= 0; i-- {
		dir := filepath.Dir(found[i])
		if want == "" || filepath.Base(dir) == "libs-"+want {
			return dir
		}
	}
	t.Fatalf("no Kafka jars under %s/.cache/kafka: this test runs a private broker from the jars scripts/kafka.sh fetches; run scripts/kafka.sh start", repoRoot)
	return ""
}

func jarHas(jar, name string) bool {
	r, err := zip.OpenReader(jar)
	if err != nil {
		return false
	}
	defer r.Close()
	for _, f := range r.File {
		if f.Name == name {
			return true
		}
	}
	return false
}

// clusterID is a random Kafka cluster id (a Uuid: 16 bytes, URL-safe
// base64 without padding, not starting with '-').
func clusterID(t testing.TB) string {
	t.Helper()
	for {
		b := make([]byte, 16)
		_, err := rand.Read(b)
		require.NoError(t, err)
		if id := base64.RawURLEncoding.EncodeToString(b); id[0] != '-' {
			return id
		}
	}
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(len(lines)-n, 0):], "\n")
}
