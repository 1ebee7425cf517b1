package dialog

import "testing"

func TestStateTransitions(t *testing.T) {
	tests := []struct {
		from, to State
		ok       bool
	}{
		{Idle, Establishing, true},
		{Establishing, Active, true},
		{Establishing, Terminating, true},
		{Establishing, Closed, true},
		{Active, Suspended, true},
		{Suspended, Active, true},
		{Active, Terminating, true},
		{Terminating, Closed, true},
		{Active, Establishing, false},
		{Closed, Active, false},
		{Terminating, Active, false},
		{Idle, Active, false},
		{Active, Closed, false},
	}
	for _, tt := range tests {
		if got := canMove(tt.from, tt.to); got != tt.ok {
			t.Errorf("%s -> %s: got %v, want %v", tt.from, tt.to, got, tt.ok)
		}
	}
}
