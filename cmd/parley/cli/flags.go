package cli

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/parley-sip/parley/cmd/parley/admin"
	"github.com/parley-sip/parley/config"
)

// defaultAdminAddr is where the operator commands look for the admin API
// when neither -admin nor -config says otherwise; it is admin.listen's
// default.
const defaultAdminAddr = "127.0.0.1:9060"

// commandFlags is the flag set every operator command shares.
type commandFlags struct {
	fs         *flag.FlagSet
	admin      string
	configPath string
	token      string
	json       bool
}

func newCommandFlags(name, synopsis string, withJSON bool, stderr io.Writer) *commandFlags {
	c := &commandFlags{fs: flag.NewFlagSet("parley "+name, flag.ContinueOnError)}
	c.fs.SetOutput(stderr)
	c.fs.StringVar(&c.admin, "admin", "", "admin API address (host:port); default: admin.listen of -config, else "+defaultAdminAddr)
	c.fs.StringVar(&c.configPath, "config", "", "configuration file whose admin.listen, admin.token and store.path to use")
	c.fs.StringVar(&c.token, "token", "", "admin token for changes; default: $"+tokenEnv+", else admin.token of -config, else the "+admin.TokenFile+" file in its store.path")
	if withJSON {
		c.fs.BoolVar(&c.json, "json", false, "print the API's JSON as it is")
	}
	c.fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: parley %s %s\n", name, synopsis)
		c.fs.PrintDefaults()
	}
	return c
}

// parse parses args, allowing flags after the positional arguments too
// (parley hangup ID -admin ADDR), and returns the positional ones.
func (c *commandFlags) parse(args []string) ([]string, error) {
	var pos []string
	for {
		if err := c.fs.Parse(args); err != nil {
			return nil, usageError{}
		}
		if c.fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, c.fs.Arg(0))
		args = c.fs.Args()[1:]
	}
}

// client returns the API client the flags point at, with the admin token
// it finds (see findToken).
func (c *commandFlags) client() (*apiClient, error) {
	cfg, cfgName, err := c.config()
	if err != nil {
		return nil, err
	}
	addr := c.admin
	if addr == "" && c.configPath != "" {
		if cfg.Admin.Listen == "" {
			return nil, fmt.Errorf("admin.listen is empty in %s, so that parley has no admin API", c.configPath)
		}
		addr = cfg.Admin.Listen
	}
	if addr == "" {
		addr = defaultAdminAddr
	}
	base, err := apiBase(addr)
	if err != nil {
		return nil, err
	}
	return &apiClient{base: base, http: &http.Client{Timeout: 10 * time.Second},
		token: findToken(c.token, cfg, cfgName)}, nil
}

// config returns the configuration of -config, or the embedded default,
// and how to name it in messages.
func (c *commandFlags) config() (*config.Config, string, error) {
	if c.configPath == "" {
		cfg, err := config.Default()
		return cfg, "the default config", err
	}
	cfg, err := config.Load(c.configPath)
	if err != nil {
		return nil, "", fmt.Errorf("config: %w", err)
	}
	return cfg, c.configPath, nil
}
