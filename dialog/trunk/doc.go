// Package trunk keeps parley registered with its upstream providers
// (trunks[] in the config) and holds what the B2BUA needs to call through
// them and to take their calls.
//
// It owns, per trunk: the registration as a digest client (machine.go,
// the states and their timings as a plain value; registration.go, the
// loop that sends REGISTERs through the Server's transactions and
// unregisters on shutdown), answering a provider's challenges (auth.go),
// where the registrar is (dest.go: the one place a registrar's name
// becomes an address), which INVITEs come from the provider (Inbound),
// and the trunks' state for the metrics and the admin API (status.go,
// metrics.go).
//
// It does not own the SIP transactions (dialog.Server sends for it,
// through dialog.TrunkClient) nor the calls: the B2BUA asks a Set, as its
// dialog.Trunks, where a trunk's calls go and how to answer a challenge.
package trunk
