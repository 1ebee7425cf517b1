package registrar

// All returns every unexpired binding of every user, reachable or not, with
// what qualification knows of it: sorted by user, newest first within a
// user. It is the operator's view (GET /api/registrations). The slice is
// the caller's to keep.
func (r *Registrar) All() []Binding {
	return r.loc.all(r.now())
}

// RemoveUser removes every binding of user, as a REGISTER with Contact: *
// and Expires: 0 would (the Store forgets them at the next write), and
// returns how many unexpired ones there were. It is the operator's way to
// drop a user's registrations (DELETE /api/registrations/{user}); a phone
// that is still running comes back at its next refresh.
func (r *Registrar) RemoveUser(user string) int {
	n, held := r.loc.remove(user, r.now())
	if held {
		r.markDirty(user)
	}
	if n > 0 {
		r.log.Info("registrar: bindings removed by admin", "user", user, "bindings", n)
	}
	return n
}
