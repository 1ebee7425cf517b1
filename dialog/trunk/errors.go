package trunk

import "errors"

// Errors of the trunks.
var (
	// ErrUnknownTrunk: no trunk of that name.
	ErrUnknownTrunk = errors.New("trunk: no such trunk")
	// ErrNoChallenge: a 401 or 407 without a digest challenge parley can
	// answer (an algorithm other than MD5 or SHA-256, a qop other than
	// auth).
	ErrNoChallenge = errors.New("trunk: no digest challenge parley can answer")
	// ErrRefused: the provider refused the credentials (403, or a second
	// challenge after an answer).
	ErrRefused = errors.New("trunk: credentials refused")
	// ErrNotRegistered: a 2xx that kept none of parley's Contact.
	ErrNotRegistered = errors.New("trunk: registrar kept no contact")
	// ErrNoAddress: the registrar's host has no address.
	ErrNoAddress = errors.New("trunk: registrar has no address")
)
