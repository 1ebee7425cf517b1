package media

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any of them leaks a goroutine: every
// echo session must stop its goroutine on Close.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
