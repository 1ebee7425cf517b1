package rooms

import (
	"fmt"

	"github.com/parley-sip/parley/config"
	"github.com/parley-sip/parley/dialog/service"
	"github.com/parley-sip/parley/media/room"
)

func init() { service.Register("rooms", setup) }

// setup builds a room for each number of services.rooms on the relay's
// port pool, publishes their Directory (for the admin API) and registers
// their metrics.
func setup(env service.Env) ([]service.Binding, error) {
	cfg := env.Config.Services.Rooms
	if len(cfg) == 0 {
		return nil, nil
	}
	dir := &Directory{rooms: map[string]*Service{}}
	met := newMetrics(dir)
	var out []service.Binding
	for number, rc := range cfg {
		key := "services.rooms." + number
		log := env.Log.With("component", "rooms", "room", number)
		s := &Service{mode: rc.Mode}
		opts := []room.Option{room.WithTimeout(env.Config.RTP.Timeout), room.WithLogger(log)}
		if rc.Mode == config.RoomPTT {
			p := &ptt{number: number, log: log, metrics: met}
			p.floor.FloorTimeout, p.floor.MaxTalk = rc.FloorTimeout, rc.MaxTalk
			s.ptt = p
			opts = append(opts, room.WithGate(), room.WithKeys(p.key), room.WithTick(p.tick), room.WithLeave(p.leave))
		}
		r, err := room.New(number, env.Ports, env.RTPAddress, env.Config.RTP.Codecs, opts...)
		if err != nil {
			return nil, fmt.Errorf("%s: %w (rtp.codecs)", key, err)
		}
		s.r = r
		if s.ptt != nil {
			s.ptt.r = r
		}
		dir.add(number, s)
		out = append(out, service.Binding{Number: number, Service: s})
	}
	if err := met.register(env.Registerer); err != nil {
		return nil, fmt.Errorf("services.rooms: metrics: %w", err)
	}
	if env.Publish != nil {
		env.Publish(dir)
	}
	return out, nil
}
