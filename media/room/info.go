package room

// MemberInfo is what the admin API shows of one member.
type MemberInfo struct {
	User    string `json:"user"`
	Call    string `json:"call"`
	Muted   bool   `json:"muted"`
	Talking bool   `json:"talking"`
}

// Info is what the admin API shows of one room.
type Info struct {
	Number  string       `json:"number"`
	Mode    string       `json:"mode"`
	Members []MemberInfo `json:"members"`
	// Floor is the user holding the floor of a push-to-talk room, or "".
	Floor string `json:"floor"`
	// Queue lists the users waiting for the floor, first first.
	Queue []string `json:"queue"`
}
