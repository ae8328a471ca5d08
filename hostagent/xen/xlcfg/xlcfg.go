// Package xlcfg reads and writes the xl.cfg(5) file syntax the way libxlu does
// (tools/libs/util/libxlu_cfg_l.l and libxlu_cfg_y.y in xen): `key = value` statements ended by
// a newline or `;`, `#` comments, values that are a quoted string, a bare number, or a
// bracketed list of values. The renderer in package xen quotes every value through Quote, and
// the tests parse the rendered file back with Parse to prove that no value can add a key; the
// xl simulator uses Parse to read the configs it is given, as real xl would.
package xlcfg

import (
	"errors"
	"fmt"
	"strings"
)

// Value is one xl.cfg value: a string (quoted or a bare number) or a list of values.
type Value struct {
	// Str is the dequoted string, or the number's text.
	Str string
	// Number is true for a bare number token (e.g. memory = 512).
	Number bool
	// List is set for a bracketed list; IsList tells an empty list from a string.
	List   []Value
	IsList bool
}

// Setting is one `key = value` (or `key += value`) statement.
type Setting struct {
	Key    string
	Append bool // `+=`
	Value  Value
	Line   int
}

// File is a parsed xl.cfg: its settings in order.
type File struct {
	Settings []Setting
}

// Keys returns each key once, in first-seen order.
func (f *File) Keys() []string {
	seen := map[string]bool{}
	var keys []string
	for _, s := range f.Settings {
		if !seen[s.Key] {
			seen[s.Key] = true
			keys = append(keys, s.Key)
		}
	}
	return keys
}

// Get returns the effective value of key: the last assignment, with later `+=` appended as libxlu
// does for lists and strings.
func (f *File) Get(key string) (Value, bool) {
	var v Value
	found := false
	for _, s := range f.Settings {
		if s.Key != key {
			continue
		}
		if !s.Append || !found {
			v, found = s.Value, true
			continue
		}
		switch {
		case v.IsList && s.Value.IsList:
			v.List = append(append([]Value(nil), v.List...), s.Value.List...)
		case !v.IsList && !s.Value.IsList:
			v.Str += s.Value.Str
			v.Number = false
		default:
			v = s.Value
		}
	}
	return v, found
}

// String returns the string value of key, and whether it was set to a string.
func (f *File) String(key string) (string, bool) {
	v, ok := f.Get(key)
	if !ok || v.IsList {
		return "", false
	}
	return v.Str, true
}

// StringList returns the string items of list key.
func (f *File) StringList(key string) ([]string, bool) {
	v, ok := f.Get(key)
	if !ok || !v.IsList {
		return nil, false
	}
	out := make([]string, 0, len(v.List))
	for _, item := range v.List {
		if item.IsList {
			return nil, false
		}
		out = append(out, item.Str)
	}
	return out, true
}

// ErrUnquotable is returned by Quote for a string that xl.cfg cannot carry safely.
var ErrUnquotable = errors.New("value cannot be written to xl.cfg")

// Quote returns s as a double-quoted xl.cfg string. Backslash and double quote are escaped (the
// only escapes libxlu's dequote handles without surprises: its \x and octal escapes are buggy).
// Control characters, including newline, are refused rather than escaped: no xl.cfg value we
// write has a reason to contain one, and refusing keeps every value on its own line.
func Quote(s string) (string, error) {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c < 0x20 || c == 0x7f:
			return "", fmt.Errorf("%w: control character %q at byte %d", ErrUnquotable, c, i)
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String(), nil
}

// SyntaxError is a parse failure at a line, worded like libxlu's
// "<source>:<line>: config parsing error near `<token>': <msg>".
type SyntaxError struct {
	Line int
	Near string
	Msg  string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("%d: config parsing error near `%s': %s", e.Line, e.Near, e.Msg)
}

// Format renders the error as libxlu prints it for a config read from source.
func (e *SyntaxError) Format(source string) string {
	return fmt.Sprintf("%s:%d: config parsing error near `%s': %s", source, e.Line, e.Near, e.Msg)
}

type tokKind int

const (
	tEOF tokKind = iota
	tIdent
	tNumber
	tString
	tComma
	tLBrack
	tRBrack
	tAssign
	tAppend
	tSemi
	tNewline
)

type token struct {
	kind tokKind
	text string // raw text (for errors), or the dequoted string
	line int
}

func isLower(c byte) bool { return c >= 'a' && c <= 'z' }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func lex(data []byte) ([]token, error) {
	var toks []token
	line := 1
	i := 0
	for i < len(data) {
		c := data[i]
		switch {
		case c == ' ' || c == '\t':
			i++
		case c == '\n':
			toks = append(toks, token{tNewline, "\n", line})
			line++
			i++
		case c == '#':
			for i < len(data) && data[i] != '\n' {
				i++
			}
		case isLower(c):
			j := i + 1
			for j < len(data) && (isLower(data[j]) || isDigit(data[j]) || data[j] == '.' || data[j] == '_') {
				j++
			}
			toks = append(toks, token{tIdent, string(data[i:j]), line})
			i = j
		case isDigit(c):
			j := i + 1
			for j < len(data) && (isDigit(data[j]) || (data[j] >= 'a' && data[j] <= 'f') || data[j] == 'x') {
				j++
			}
			toks = append(toks, token{tNumber, string(data[i:j]), line})
			i = j
		case c == ',':
			toks = append(toks, token{tComma, ",", line})
			i++
		case c == '[':
			toks = append(toks, token{tLBrack, "[", line})
			i++
		case c == ']':
			toks = append(toks, token{tRBrack, "]", line})
			i++
		case c == '+' && i+1 < len(data) && data[i+1] == '=':
			toks = append(toks, token{tAppend, "+=", line})
			i += 2
		case c == '=':
			toks = append(toks, token{tAssign, "=", line})
			i++
		case c == ';':
			toks = append(toks, token{tSemi, ";", line})
			i++
		case c == '"' || c == '\'':
			s, n, err := dequote(data[i:], line)
			if err != nil {
				return nil, err
			}
			toks = append(toks, token{tString, s, line})
			i += n
		default:
			j := i
			for j < len(data) && data[j] != ' ' && data[j] != '\t' && data[j] != '\n' {
				j++
			}
			return nil, &SyntaxError{Line: line, Near: string(data[i:j]), Msg: "lexical error"}
		}
	}
	toks = append(toks, token{tEOF, "", line})
	return toks, nil
}

// dequote reads one quoted string at the start of data and returns its value and length.
func dequote(data []byte, line int) (string, int, error) {
	q := data[0]
	var b strings.Builder
	for i := 1; i < len(data); i++ {
		c := data[i]
		switch {
		case c == q:
			return b.String(), i + 1, nil
		case c == '\n':
			return "", 0, &SyntaxError{Line: line, Near: string(data[:i]), Msg: "lexical error"}
		case c == '\\':
			if i+1 >= len(data) || data[i+1] == '\n' {
				return "", 0, &SyntaxError{Line: line, Near: string(data[:i+1]), Msg: "lexical error"}
			}
			i++
			switch e := data[i]; e {
			case '"', '\'', '\\':
				b.WriteByte(e)
			case 'a':
				b.WriteByte(7)
			case 'b':
				b.WriteByte(8)
			case 'f':
				b.WriteByte(12)
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			case 'v':
				b.WriteByte(11)
			default:
				// libxlu also takes \x and octal escapes, but decodes them wrongly; we never
				// write them and refuse them here.
				return "", 0, &SyntaxError{Line: line, Near: string(data[:i+1]), Msg: "invalid character after backlash in quoted string"}
			}
		default:
			b.WriteByte(c)
		}
	}
	return "", 0, &SyntaxError{Line: line, Near: string(data), Msg: "lexical error"}
}

type parser struct {
	toks []token
	pos  int
}

func (p *parser) peek() token { return p.toks[p.pos] }
func (p *parser) next() token {
	t := p.toks[p.pos]
	if t.kind != tEOF {
		p.pos++
	}
	return t
}

func (p *parser) errAt(t token, msg string) error {
	near := t.text
	if t.kind == tNewline {
		near = "<newline>"
	}
	return &SyntaxError{Line: t.line, Near: near, Msg: msg}
}

// Parse parses an xl.cfg file. It is stricter than libxlu in one way: a syntax error anywhere
// fails the whole file (libxlu also fails the whole file, after reporting every error).
func Parse(data []byte) (*File, error) {
	toks, err := lex(data)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks}
	f := &File{}
	for {
		t := p.next()
		switch t.kind {
		case tEOF:
			return f, nil
		case tNewline, tSemi:
			continue
		case tIdent:
			op := p.next()
			if op.kind != tAssign && op.kind != tAppend {
				return nil, p.errAt(op, "syntax error, expecting '=' or '+='")
			}
			v, err := p.value()
			if err != nil {
				return nil, err
			}
			f.Settings = append(f.Settings, Setting{Key: t.text, Append: op.kind == tAppend, Value: v, Line: t.line})
			end := p.next()
			if end.kind != tNewline && end.kind != tSemi && end.kind != tEOF {
				return nil, p.errAt(end, "syntax error, expecting end of statement")
			}
			if end.kind == tEOF {
				return f, nil
			}
		default:
			return nil, p.errAt(t, "syntax error, expecting a key")
		}
	}
}

func (p *parser) skipNewlines() {
	for p.peek().kind == tNewline {
		p.next()
	}
}

func (p *parser) value() (Value, error) {
	t := p.next()
	switch t.kind {
	case tString:
		return Value{Str: t.text}, nil
	case tNumber:
		return Value{Str: t.text, Number: true}, nil
	case tLBrack:
		v := Value{IsList: true}
		p.skipNewlines()
		if p.peek().kind == tRBrack {
			p.next()
			return v, nil
		}
		for {
			item, err := p.value()
			if err != nil {
				return Value{}, err
			}
			v.List = append(v.List, item)
			p.skipNewlines()
			sep := p.next()
			switch sep.kind {
			case tRBrack:
				return v, nil
			case tComma:
				p.skipNewlines()
				if p.peek().kind == tRBrack { // trailing comma
					p.next()
					return v, nil
				}
			default:
				return Value{}, p.errAt(sep, "syntax error, expecting ',' or ']'")
			}
		}
	default:
		return Value{}, p.errAt(t, "syntax error, expecting a value")
	}
}
