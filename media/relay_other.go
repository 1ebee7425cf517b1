//go:build !linux

package media

import "net/netip"

// The relay's event loop is built on Linux's epoll, recvmmsg and sendmmsg;
// on other systems NewRelay fails with ErrRelayUnsupported. These stubs
// only keep the package building there.

type relaySocket struct{ fd int }

type sockaddr struct{}

type worker struct{ workerBase }

func newWorker(*Relay) (*worker, error) { return nil, ErrRelayUnsupported }

func (w *worker) start() error         { return ErrRelayUnsupported }
func (w *worker) loop() error          { return ErrRelayUnsupported }
func (w *worker) wake()                {}
func (w *worker) stop()                {}
func (w *worker) add(b *Bridge) error  { return ErrRelayUnsupported }
func (w *worker) remove(*Bridge, bool) {}

func openSockets(netip.Addr, int) (rtp, rtcp relaySocket, err error) {
	return relaySocket{-1}, relaySocket{-1}, ErrRelayUnsupported
}

func closeSocket(relaySocket) {}

func drainSocket(relaySocket) {}

func sendPacket(relaySocket, *endpoint, []byte) error { return ErrRelayUnsupported }

func makeSockaddr(netip.AddrPort) sockaddr { return sockaddr{} }
