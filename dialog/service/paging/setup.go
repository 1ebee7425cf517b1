// Package paging is the paging groups service (simplex): a call to a
// group's number is answered by parley, which calls every registered
// phone of the group's members with auto-answer hints and an offer that
// only sends, and the caller's audio reaches every member who answered.
// See README.md.
package paging

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/parley-sip/parley/dialog"
	"github.com/parley-sip/parley/dialog/service"
	"github.com/parley-sip/parley/media"
)

func init() { service.Register("paging", setup) }

// setup reads services.paging (number → members) and builds one group per
// number on the relay's port pool.
func setup(env service.Env) ([]service.Binding, error) {
	if len(env.Config.Services.Paging) == 0 {
		return nil, nil
	}
	pages, err := media.NewPages(env.Ports, env.RTPAddress, env.Config.RTP.Codecs, env.Config.RTP.Timeout,
		env.Log.With("component", "paging"))
	if err != nil {
		return nil, fmt.Errorf("services.paging: %w", err)
	}
	numbers := make([]string, 0, len(env.Config.Services.Paging))
	for n := range env.Config.Services.Paging {
		numbers = append(numbers, n)
	}
	slices.Sort(numbers)
	out := make([]service.Binding, 0, len(numbers))
	for _, n := range numbers {
		members := slices.Clone(env.Config.Services.Paging[n])
		out = append(out, service.Binding{Number: n, Service: Group{pages: pages, members: members}})
	}
	return out, nil
}

// Group is one paging group.
type Group struct {
	pages   *media.Pages
	members []string
}

// Members returns the users the group pages.
func (g Group) Members() []string { return g.members }

// App names the service in call records.
func (g Group) App() string { return "Page" }

// Start answers the pager. A group needs the local address facing the
// pager when media binds every address: see StartAt.
func (g Group) Start(offer []byte) ([]byte, dialog.ServiceSession, error) {
	return g.StartAt(offer, netip.Addr{})
}

// StartAt answers the pager, facing local, and starts the page.
func (g Group) StartAt(offer []byte, local netip.Addr) ([]byte, dialog.ServiceSession, error) {
	answer, sess, err := g.pages.Start(offer, local)
	if err != nil {
		return nil, nil, err
	}
	return answer, session{sess}, nil
}

// session adapts media.PageSession to dialog.PageSession.
type session struct{ *media.PageSession }

func (s session) Offer(local netip.Addr) ([]byte, dialog.PageMember, error) {
	offer, m, err := s.PageSession.Offer(local)
	if err != nil {
		return nil, nil, err
	}
	return offer, m, nil
}
