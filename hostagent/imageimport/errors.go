package imageimport

import (
	"errors"
	"net/url"
	"strings"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
)

// Error is a failed import. Reason is one of the vmv1alpha1.ReasonImport* constants (the
// HostImportStatus reason); Message says what happened for people, and never contains the
// URL's userinfo or query (URLs in it went through Redact); Err is the cause, for errors.Is
// and errors.As (context.Canceled on a shutdown, *command.Error of qemu-img, the Volume's
// error). Err is scrubbed the same way: net/http's *url.Error, which quotes the whole URL, is
// never part of it.
type Error struct {
	Reason  string
	Message string
	Err     error
}

func (e *Error) Error() string { return e.Reason + ": " + e.Message }

func (e *Error) Unwrap() error { return e.Err }

// Reason returns the import reason of err: its *Error's Reason, or ReasonImportFailed for
// any other error (nil for none).
func Reason(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) && e.Reason != "" {
		return e.Reason
	}
	return vmv1alpha1.ReasonImportFailed
}

// stripURLError drops the *url.Error wrappers net/http puts around its errors: their
// message is `Get "<the full URL>": …`, query and username included.
func stripURLError(err error) error {
	for {
		ue, ok := err.(*url.Error)
		if !ok {
			return err
		}
		err = ue.Err
	}
}

// scrubber removes a URL's secrets from text that might quote them. It is the second line
// of defence: messages are built from Redact and stripURLError, and this catches what a
// library error might still embed.
type scrubber struct{ pairs []string } // old, new, old, new…

func newScrubber(rawURL string) scrubber {
	s := scrubber{pairs: []string{rawURL, Redact(rawURL)}}
	u, err := url.Parse(rawURL)
	if err != nil {
		return s
	}
	if u.User != nil {
		s.pairs = append(s.pairs, u.User.String()+"@", "")
		if p, ok := u.User.Password(); ok && p != "" {
			s.pairs = append(s.pairs, p, "[redacted]", url.QueryEscape(p), "[redacted]")
		}
	}
	if u.RawQuery != "" {
		s.pairs = append(s.pairs, "?"+u.RawQuery, "", u.RawQuery, "[redacted]")
	}
	return s
}

func (s scrubber) scrub(text string) string {
	for i := 0; i+1 < len(s.pairs); i += 2 {
		if s.pairs[i] != "" {
			text = strings.ReplaceAll(text, s.pairs[i], s.pairs[i+1])
		}
	}
	return text
}
