// Package problem writes HTTP errors as RFC 9457 problem details
// (Content-Type application/problem+json), the one error format every
// microshop endpoint answers with.
package problem

import (
	"encoding/json"
	"net/http"
)

// ContentType is the media type of a problem details document.
const ContentType = "application/problem+json"

// Details is an RFC 9457 problem details object. The zero value is not
// meaningful: set at least Status; Title defaults to the status text.
type Details struct {
	// Type is a URI identifying the problem type; empty means "about:blank".
	Type string `json:"type,omitempty"`
	// Title is a short, human-readable summary of the problem type.
	Title string `json:"title"`
	// Status is the HTTP status code.
	Status int `json:"status"`
	// Detail explains this occurrence of the problem.
	Detail string `json:"detail,omitempty"`
	// Instance is a URI reference identifying this occurrence, usually the request path.
	Instance string `json:"instance,omitempty"`
	// Errors lists field-level validation problems, if any (an RFC 9457 extension member).
	Errors []FieldError `json:"errors,omitempty"`
}

// FieldError is one invalid field of a request.
type FieldError struct {
	// Field is the JSON path of the field, e.g. "lines[0].quantity".
	Field string `json:"field"`
	// Message says what is wrong with it.
	Message string `json:"message"`
}

// New returns Details for status with its standard title and the given detail.
func New(status int, detail string) Details {
	return Details{Title: http.StatusText(status), Status: status, Detail: detail}
}

// Write sends p as the response. It fills in Title from Status when empty.
func Write(w http.ResponseWriter, p Details) {
	if p.Title == "" {
		p.Title = http.StatusText(p.Status)
	}
	w.Header().Set("Content-Type", ContentType)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(p.Status)
	// The client may have gone; there is nobody left to tell about a write error.
	_ = json.NewEncoder(w).Encode(p)
}

// Error makes Details an error, so decoders and use cases can return one and
// the transport's error mapping can pass it through with errors.As.
func (p *Details) Error() string {
	if p.Detail == "" {
		return p.Title
	}
	return p.Title + ": " + p.Detail
}
