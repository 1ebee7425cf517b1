package playback

import (
	"strings"
	"testing"

	"github.com/parley-sip/parley/dialog/service"
	"github.com/parley-sip/parley/dialog/service/servicetest"
)

func env(t *testing.T, yaml string) service.Env {
	t.Helper()
	return servicetest.Env(t, yaml, 32660, 32679)
}

func TestSetup(t *testing.T) {
	b, err := setup(env(t, "services:\n  playback:\n    '601': tone:440\n    '603': tone:1000\n"))
	if err != nil || len(b) != 2 || b[0].Number != "601" {
		t.Fatalf("bindings %+v, %v", b, err)
	}
	if app := b[0].Service.(Service).App(); app != "Playback" {
		t.Errorf("App() = %q", app)
	}
	_, err = setup(env(t, "services:\n  playback:\n    '602': /nonexistent/hello.wav\n"))
	if err == nil || !strings.Contains(err.Error(), "services.playback.602") {
		t.Errorf("a missing WAV: %v", err)
	}
	if b, err := setup(env(t, "services: {}\n")); err != nil || len(b) != 0 {
		t.Errorf("off: %v %v", b, err)
	}
}
