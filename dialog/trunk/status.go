package trunk

import "time"

// Status is a trunk as the admin API and `parley trunks` show it. It
// never holds the password.
type Status struct {
	Name      string `json:"name"`
	Registrar string `json:"registrar"`
	Username  string `json:"username"`
	// State is registering, registered, failed or unregistered.
	State State `json:"state"`
	// Contact is the Contact parley registers.
	Contact string `json:"contact,omitempty"`
	// Expires is when the provider drops the registration unless it is
	// refreshed; zero when it holds none.
	Expires time.Time `json:"expires,omitzero"`
	// Next is when parley sends its next REGISTER.
	Next time.Time `json:"next,omitzero"`
	// Failures counts the failed attempts in a row; LastError is the last
	// one's reason.
	Failures  int    `json:"failures"`
	LastError string `json:"last_error,omitempty"`
}
