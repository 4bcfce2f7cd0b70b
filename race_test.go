//go:build race

package gossip

// raceEnabled scales the long virtual-time scenarios down under the race
// detector, which slows the protocol code about fifteenfold; .ci/run also
// runs them at full scale without it.
const raceEnabled = true
