// Package config loads and validates parley's YAML configuration.
//
// It owns the Config struct, its defaults, the embedded default file and the
// validation that names the bad key. It knows nothing of SIP or media: other
// packages take the parts of a Config they need.
package config
