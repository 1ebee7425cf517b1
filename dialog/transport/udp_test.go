package transport

import "testing"

func TestCallIDBytes(t *testing.T) {
	tests := []struct{ msg, want string }{
		{"INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP x\r\nCall-ID: abc@h\r\nCSeq: 1 INVITE\r\n\r\nv=0\r\n", "abc@h"},
		{"SIP/2.0 200 OK\r\ncall-id :  xyz \r\n\r\n", "xyz"},
		{"BYE sip:a@b SIP/2.0\r\ni: compact\r\n\r\n", "compact"},
		{"BYE sip:a@b SIP/2.0\r\nVia: x\r\n\r\nCall-ID: in-body\r\n", ""},
		{"garbage", ""},
	}
	for _, tc := range tests {
		if got := string(callIDBytes([]byte(tc.msg))); got != tc.want {
			t.Errorf("callIDBytes(%q) = %q, want %q", tc.msg, got, tc.want)
		}
	}
}
