package dialog

import "github.com/parley-sip/parley/dialog/transport"

// Capture is a transport.Tap with a sender of its own (package capture's
// HEP exporter): Serve shows it every SIP message its listeners read and
// write, and runs it from before the first message until after the
// listeners close, so the BYEs of a shutdown are captured too.
type Capture interface {
	transport.Tap
	// Run sends what the tap took until done is closed, then the rest,
	// and returns.
	Run(done <-chan struct{})
}

// WithCapture shows every SIP message to c (capture.hep).
func WithCapture(c Capture) Option {
	return func(s *Server) error { s.capture = c; return nil }
}

// runCapture starts the capture's sender on serving; the returned
// function stops it once the listeners are closed.
func (s *Server) runCapture(serving interface{ Go(func()) }) (stop func()) {
	if s.capture == nil {
		return func() {}
	}
	done := make(chan struct{})
	serving.Go(func() { s.capture.Run(done) })
	return func() { close(done) }
}

// udpTapOptions and tcpTapOptions hand the capture to the listeners.
func (s *Server) udpTapOptions() []transport.UDPOption {
	if s.capture == nil {
		return nil
	}
	return []transport.UDPOption{transport.WithTap(s.capture)}
}

func (s *Server) tcpTapOptions() []transport.GuardOption {
	if s.capture == nil {
		return nil
	}
	return []transport.GuardOption{transport.WithStreamTap(s.capture)}
}
