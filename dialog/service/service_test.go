package service

import (
	"errors"
	"strings"
	"testing"

	"github.com/parley-sip/parley/dialog"
)

type nothing struct{}

func (nothing) Start([]byte) ([]byte, dialog.ServiceSession, error) {
	return nil, nil, errors.New("not here")
}

// TestRegistry checks registration, the options for what the setups
// return, and the errors: a setup's own, and one number taken twice.
func TestRegistry(t *testing.T) {
	t.Cleanup(func() {
		mu.Lock()
		delete(registry, "test-a")
		delete(registry, "test-b")
		mu.Unlock()
	})
	number := "700"
	var fail error
	Register("test-a", func(Env) ([]Binding, error) { return []Binding{{Number: "700", Service: nothing{}}}, nil })
	Register("test-b", func(Env) ([]Binding, error) {
		if fail != nil {
			return nil, fail
		}
		return []Binding{{Number: number, Service: nothing{}}}, nil
	})
	if n := Names(); !strings.Contains(strings.Join(n, ","), "test-a,test-b") {
		t.Fatalf("Names() = %v", n)
	}
	if _, err := Options(Env{}); err == nil || !strings.Contains(err.Error(), "services.test-b: number 700 is taken by services.test-a") {
		t.Fatalf("one number twice: err %v", err)
	}
	number = "701"
	opts, err := Options(Env{})
	if err != nil || len(opts) != 2 {
		t.Fatalf("got %d options, err %v; want 2", len(opts), err)
	}
	fail = errors.New("services.test-b: bad")
	if _, err := Options(Env{}); !errors.Is(err, fail) {
		t.Fatalf("setup error lost: %v", err)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("a second registration of one name did not panic")
		}
	}()
	Register("test-a", nil)
}
