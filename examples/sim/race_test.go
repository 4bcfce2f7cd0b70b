//go:build race

package sim

// raceEnabled is true under the race detector, which slows the simulation
// about tenfold: the default size shrinks as under -short.
const raceEnabled = true
