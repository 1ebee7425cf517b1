// Package media owns what parley does with a call's media: the pool of UDP
// ports RTP and RTCP use, SDP offer/answer (RFC 3264), the relay that moves
// every call's RTP and RTCP between its two legs, and the echo service.
//
// A call's media is a [Session] (from [Sessions]): it rewrites each offer
// and answer that crosses between the legs so both phones send to parley,
// and holds a [Bridge] of the [Relay]: two port pairs, one per side. The
// relay is an epoll loop per CPU over non-blocking sockets with
// recvmmsg/sendmmsg batches and no allocation per packet (Linux only).
//
// It does not speak SIP. The dialog package carries SDP bodies in and out of
// INVITEs and decides when a call starts and ends; media only turns an offer
// into an answer, binds sockets and moves packets. Errors that should become
// a SIP response (a malformed offer, no codec in common, no free port) are
// *sipmsg.Error values from the SIP message leaf, dialog/sipmsg, carrying
// their status, Warning text and Retry-After, so dialog answers them with
// sipmsg.Response and needs no knowledge of this package's internals. That
// leaf is the only SIP package media imports: never dialog or registrar.
//
// # Choices worth knowing
//
//   - Ports come in pairs: RTP on an even port, RTCP on the next odd one
//     (RFC 3550 §11). Released ports go to the back of the queue so that a
//     late packet of an old call does not land in a new one.
//   - [Answer] picks one audio codec, the first of the operator's
//     preferences that the offer contains, and answers in the offerer's
//     payload type numbers. telephone-event (RFC 4733) is carried along
//     whenever both sides have it.
//   - Media is symmetric (RFC 4961): parley sends RTP to the address packets
//     really come from, not the one in the SDP, which is what makes calls
//     through NAT work.
//   - Each side of a bridge binds on one IP family, its phone's
//     ([Relay.OpenFor], [Sessions.NewFor]), so an IPv4 phone can call an
//     IPv6 one through the relay; the relay's IPv6 address comes from
//     [WithRelayAddress6]. Both families share the port pool.
//   - DTMF: each side negotiates telephone-event on its own terms, as its
//     [DTMFMode] says ([Session.SetDTMFMode]); where one side uses RFC 4733
//     events and the other does not, the bridge takes the first side's
//     events out of the stream and reports each key once
//     ([Bridge.OnEvent]), and sends keys given from SIP INFO to it as
//     events in the stream it forwards there ([Bridge.SendEvent]). The
//     dialog package turns those keys into INFO and back.
//   - SRTP: each side speaks SDES-SRTP (RFC 4568) or plain RTP on its own,
//     as its [SRTPPolicy] (rtp.srtp, [Session.SetSRTPPolicy]) and its SDP
//     say, with keys of its own ([Bridge.SetSRTP]); the bridge decrypts
//     what one side sends and encrypts what it sends the other, in place,
//     with github.com/pion/srtp. A packet that does not authenticate is
//     dropped and counted before it can latch. Keys never reach a
//     checkpoint, so a call with an SRTP leg is not restored
//     ([ErrSRTPNotRestored]). Parley's own services ([Answer]) speak plain
//     RTP only.
package media
