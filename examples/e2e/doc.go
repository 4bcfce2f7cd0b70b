// Package e2e holds end-to-end tests of the example programs
// (examples/seed and examples/peer).
//
// The tests build both binaries once per test run, start real processes on
// 127.0.0.1 with short protocol intervals, kill, freeze, restart and stop
// them with signals, and check what the programs wrote to their output
// files. They need Linux (process signals, /proc). The heavy tests are
// skipped under -short.
//
//	go test ./examples/e2e/
//	go test -short ./examples/e2e/   # only the quick prompt test
//
// Settings: E2E_KEEP=dir copies a failed test's config, output files and
// captured stdout/stderr into dir/<test> (E2E_KEEP_ALL=1: every test's);
// E2E_RACE=1 builds the programs with -race; -args -e2e.order-seed=N
// replays TestGracefulStopAnyOrder's logged stop order.
//
// The package has no code of its own: everything is in _test.go files.
package e2e
