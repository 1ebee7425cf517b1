// Package capture copies the SIP messages parley sends and receives to a
// collector. Its one exporter today speaks HEPv3 (the Homer/EEP
// encapsulation, hep.go) over UDP to capture.hep: Homer's heplify-server,
// Kamailio's sipcapture, or sngrep -L.
//
// The Exporter is a transport.Tap: the transport shows it each message on
// the path the message takes, and it only copies the message into a
// bounded queue and returns; one goroutine, which the SIP server owns
// (Run), encodes and sends. A full queue drops the message and counts it,
// so capture never slows or blocks SIP. The package knows nothing of
// parley's other packages.
package capture
