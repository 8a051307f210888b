// Command agent is the Sluice log shipping agent.
//
//	agent run --config FILE       run until SIGTERM/SIGINT; SIGHUP reloads
//	    [--watch-config]          the config (so does a change of the file)
//	agent validate --config FILE  print every config problem; exit 1 if any
//	agent types                   list every input and output type with its
//	                              options and their defaults
//	agent demo                    tail the sample logs under examples/ with an
//	                              embedded config and print a summary
//	agent health [--addr A]       GET /healthz of a running agent; exit 0 if ok
//	agent buffer ls|inspect|replay|drop
//	                              the disk queues of a stopped agent
//	agent top [--addr A]          live view of a running agent
//	agent tap OUTPUT [--addr A]   a sample of live events as JSON lines
//	agent version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/sluice-agent/sluice/agent"
	// Before VictoriaMetrics/metrics' init: its log.Printf lines are JSON.
	_ "github.com/sluice-agent/sluice/cmd/agent/internal/earlylog"
	"github.com/sluice-agent/sluice/config"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "run":
		return cmdRun(args[1:], stdout, stderr)
	case "validate":
		return cmdValidate(args[1:], stdout, stderr)
	case "types":
		return cmdTypes(args[1:], stdout, stderr)
	case "demo":
		return cmdDemo(args[1:], stdout, stderr)
	case "health":
		return cmdHealth(args[1:], stdout, stderr)
	case "route":
		return cmdRoute(args[1:], stdout, stderr) // route.go: dry run of processors and routes
	case "buffer":
		return cmdBuffer(args[1:], stdout, stderr) // buffer.go
	case "top":
		return cmdTop(args[1:], stdout, stderr) // top.go
	case "tap":
		return cmdTap(args[1:], stdout, stderr) // tap.go
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, "sluice", version)
		return 0
	case "help", "-h", "--help":
		usage(stdout)
		return 0
	}
	fmt.Fprintf(stderr, "agent: unknown command %q\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage: agent <command> [flags]

commands:
  run --config FILE [--watch-config]
                          run the agent until SIGTERM or SIGINT; SIGHUP (and,
                          with --watch-config, a change of the file) reloads
                          the config, a bad one is logged and the running
                          one stays
  validate [--config] FILE  check a config file and print every problem
  types                   list every input and output type with its options
                          and their defaults
  demo [--logs DIR] [--out DIR]
                          tail sample Docker logs with an embedded config,
                          route them by log type to files, print a summary
  health [--addr ADDR | --config FILE] [--ready]
                          ask a running agent's /healthz (or /readyz); exit 0
                          when it answers 200, 1 otherwise
  buffer ls|inspect|replay|drop
                          the disk queues of a stopped agent: list them,
                          print one as JSON lines, move one (or a
                          dead-letter queue) into another output, delete
                          one; agent buffer --help for the flags
  top [--addr ADDR | --config FILE] [--interval 1s]
                          live view of a running agent: events/s per input
                          and output, queues, retries, drops, servers
  tap OUTPUT|route:N [--addr ADDR | --config FILE] [-n 100] [--rate 100]
                          stream a sample of the events a running agent
                          stores for an output as JSON lines
  route --tag TAG [--record JSON] [--config FILE]
                          print which routes and outputs an event would
                          take, and why, offline
  version                 print the version

agent <command> --help prints a command's flags; agent types prints every
option of every input and output type with its type and default. The config
reference, every option with its type, default and meaning (generated from
the code): `+configReference+`. Running the agent: docs/operations.md.
`)
}

// configReference is where the config reference is: docs/config.md, which
// go generate ./config writes from package config.
const configReference = "docs/config.md"

// commandUsage sets fs's usage (printed by --help and -h, and on a bad
// flag): a usage line, what the command does, where the config reference
// is, and the flags.
func commandUsage(fs *flag.FlagSet, synopsis, what string) {
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "usage: agent %s\n\n%s\n\nEvery config option, with its type, default and meaning: %s\n(agent types lists the options of each input and output type).\n\nflags:\n", synopsis, what, configReference)
		fs.PrintDefaults()
	}
}

func cmdValidate(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	commandUsage(fs, "validate [--config] FILE", "Checks a config file and prints every problem, one per line as\nFILE:LINE: KEY: MESSAGE, then its warnings; exits 1 if there is a problem.")
	path := fs.String("config", "/etc/sluice/agent.yml", "config file")
	if err := fs.Parse(args); err != nil {
		return flagErrCode(err)
	}
	// `agent validate FILE` as well as --config FILE (the common typo
	// must not silently check the default path instead).
	switch rest := fs.Args(); {
	case len(rest) == 1 && !flagSet(fs, "config"):
		*path = rest[0]
	case len(rest) > 0:
		fmt.Fprintf(stderr, "validate: unexpected arguments %q (one config file, or --config FILE)\n", rest)
		return 2
	}
	c, err := config.Load(*path)
	if err != nil {
		printErrors(stderr, err)
		return 1
	}
	for _, w := range c.Warnings() {
		fmt.Fprintf(stderr, "%s: warning: %s\n", *path, w)
	}
	fmt.Fprintf(stdout, "%s: ok\n", *path)
	return 0
}

// flagSet reports whether flag name was given on the command line.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// printErrors prints one problem per line, unwrapping joined errors.
func printErrors(w io.Writer, err error) {
	var multi interface{ Unwrap() []error }
	if errors.As(err, &multi) {
		for _, e := range multi.Unwrap() {
			printErrors(w, e)
		}
		return
	}
	fmt.Fprintln(w, err)
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))
}

func cmdRun(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	commandUsage(fs, "run --config FILE [--watch-config]", "Runs the agent until SIGTERM or SIGINT; SIGHUP (and, with --watch-config, a\nchange of the file) reloads the config. Its own logs are JSON lines on stdout.")
	path := fs.String("config", "/etc/sluice/agent.yml", "config file")
	watch := fs.Bool("watch-config", false, "reload the config when the file changes (checked every 2s)")
	if err := fs.Parse(args); err != nil {
		return flagErrCode(err)
	}
	hup := notifyHUP() // reload.go: from now on SIGHUP never kills the agent
	defer signal.Stop(hup)
	cfg, err := config.Load(*path)
	if err != nil {
		printErrors(stderr, err)
		return 1
	}
	log, level := newRunLogger(stdout, cfg.LogLevel)
	// Libraries that use the standard log package log through it too.
	slog.SetDefault(log)
	log.Info("starting sluice", "version", version, "config", *path)
	setMemoryLimit(log)
	if p := os.Getenv("SLUICE_CPUPROFILE"); p != "" {
		// For benchmarks: profile the whole run (until exit).
		f, err := os.Create(p)
		if err == nil && pprof.StartCPUProfile(f) == nil {
			defer func() { pprof.StopCPUProfile(); f.Close() }()
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	a, err := agent.New(cfg, log)
	if err != nil {
		log.Error("start failed", "err", err)
		return 1
	}
	a.SetVersion(version)
	// A second signal exits at once. Nothing is lost: buffers hold every
	// chunk not yet acknowledged and offsets are never ahead of them.
	go func() {
		<-ctx.Done()
		stop()
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
		<-sig
		log.Warn("second signal: exiting now")
		os.Exit(130)
	}()
	stopReloads := startReloader(ctx, a, *path, log, level, hup, *watch) // reload.go
	defer stopReloads()
	if err := a.Run(ctx); err != nil {
		log.Error("agent failed", "err", err)
		return 1
	}
	return 0
}
