package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"

	"github.com/parley-sip/parley/cmd/parley/admin"
)

// apiBase turns an admin address into the API's base URL. A listener on
// every interface (0.0.0.0:9060, :9060) is reached on loopback.
func apiBase(addr string) (string, error) {
	if strings.HasPrefix(addr, "http://") || strings.HasPrefix(addr, "https://") {
		return strings.TrimSuffix(addr, "/"), nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("admin address %q: want host:port", addr)
	}
	switch ip := net.ParseIP(host); {
	case host == "" || (ip != nil && ip.To4() != nil && ip.IsUnspecified()):
		host = "127.0.0.1"
	case ip != nil && ip.IsUnspecified():
		host = "::1"
	}
	return "http://" + net.JoinHostPort(host, port), nil
}

// apiClient calls a running parley's admin API.
type apiClient struct {
	base  string
	http  *http.Client
	token adminToken
}

// do sends one request, with the admin token when there is one, and
// returns the response body of a 2xx. Any other status becomes an error
// carrying the API's message; a 401 also says where the token came from,
// or why there was none.
func (a *apiClient) do(method, path string) ([]byte, error) {
	req, err := http.NewRequest(method, a.base+path, nil)
	if err != nil {
		return nil, err
	}
	if a.token.value != "" {
		req.Header.Set("Authorization", "Bearer "+a.token.value)
	}
	res, err := a.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the admin API at %s: %w\n(is parley running, with admin.listen set? -admin ADDR or -config FILE points elsewhere)", a.base, errors.Unwrap(err))
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, fmt.Errorf("admin API at %s: %w", a.base, err)
	}
	if res.StatusCode/100 != 2 {
		msg := fmt.Sprintf("admin API at %s: %s %s: %s", a.base, method, path, res.Status)
		var e admin.ErrorBody
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		if res.StatusCode == http.StatusUnauthorized {
			if a.token.value != "" {
				msg += " (the token sent came from " + a.token.from + ")"
			} else {
				msg += "\n(" + a.token.from + ")"
			}
		}
		return nil, errors.New(msg)
	}
	return body, nil
}
