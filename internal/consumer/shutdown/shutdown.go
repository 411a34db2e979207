// Package shutdown catches SIGTERM and SIGINT from the first moments of the
// process, so a consumer stopped while it starts exits cleanly.
//
// Go ends a process on SIGTERM until something asks for the signal, and
// the consumer binary initializes its packages (drivers, metrics, schemas)
// for tens of milliseconds before main runs, longer on a busy node: a pod
// stopped right after it started died by the signal. Importing this package
// asks for the signals in its init, which Go runs as soon as os/signal is
// ready (packages are initialized in import-path order once their own
// imports are), well before the heavy packages and main.
//
// Handoff then passes a signal caught that early to the handlers main has
// installed (signal.NotifyContext), and stops catching here.
package shutdown

import (
	"os"
	"os/signal"
	"syscall"
)

// Signals are the signals that stop the process cleanly.
var Signals = []os.Signal{syscall.SIGTERM, os.Interrupt}

var early = make(chan os.Signal, len(Signals))

func init() { signal.Notify(early, Signals...) }

// Handoff stops catching signals here and raises again, for the handlers
// installed since, every signal caught before. Call it once those handlers
// are installed; calling it again does nothing.
func Handoff() {
	signal.Stop(early)
	for {
		select {
		case sig := <-early:
			if p, err := os.FindProcess(os.Getpid()); err == nil {
				_ = p.Signal(sig) // to ourselves: cannot fail but by a bug
			}
		default:
			return
		}
	}
}
