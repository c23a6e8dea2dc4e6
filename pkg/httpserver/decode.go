package httpserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/microshop/microshop/pkg/problem"
)

// DefaultMaxBody is the body size limit DecodeJSON applies when given 0.
const DefaultMaxBody = 64 << 10

// DecodeJSON strictly decodes the request body, one JSON value, into dst. It
// returns a *problem.Details error a handler can send as it is:
//
//   - 415 unless Content-Type is application/json (parameters such as charset=utf-8 allowed);
//   - 413 when the body exceeds maxBytes (0 means DefaultMaxBody) or the
//     limit of LimitBody, whichever is smaller;
//   - 400 for malformed JSON, trailing data, or a body that is not valid UTF-8 JSON;
//   - 422 for a field of the wrong type or an unknown field, naming the field.
//
// Validation of the values themselves is the caller's job.
func DecodeJSON(w http.ResponseWriter, r *http.Request, dst any, maxBytes int64) error {
	mediaType, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mediaType != "application/json" {
		p := problem.New(http.StatusUnsupportedMediaType, "Content-Type must be application/json")
		return &p
	}
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBody
	}
	body := r.Body
	if limited, ok := body.(*limitedBody); ok {
		limited.tighten(maxBytes) // LimitBody's reader also drains and closes after a 413
	} else {
		body = http.MaxBytesReader(w, body, maxBytes)
	}
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return decodeProblem(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		p := problem.New(http.StatusBadRequest, "body must hold exactly one JSON value")
		return &p
	}
	return nil
}

func decodeProblem(err error) error {
	var (
		tooBig    *http.MaxBytesError
		typeErr   *json.UnmarshalTypeError
		syntaxErr *json.SyntaxError
	)
	switch {
	case errors.As(err, &tooBig):
		p := tooLarge(tooBig.Limit)
		return &p
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			field = "(body)"
		}
		p := invalid(field, fmt.Sprintf("must be a JSON %s", jsonKind(typeErr.Type.Kind().String())))
		return &p
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		// encoding/json has no typed error for this case.
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		p := invalid(field, "is not a known field")
		return &p
	case errors.As(err, &syntaxErr), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		p := problem.New(http.StatusBadRequest, "body is not valid JSON")
		return &p
	default:
		p := problem.New(http.StatusBadRequest, "body is not valid JSON: "+err.Error())
		return &p
	}
}

// Invalid returns a 422 problem listing field errors, the answer to a request
// whose values fail validation.
func Invalid(errs ...problem.FieldError) *problem.Details {
	return &problem.Details{
		Title:  "Invalid request",
		Status: http.StatusUnprocessableEntity,
		Detail: "one or more fields are invalid",
		Errors: errs,
	}
}

func invalid(field, message string) problem.Details {
	return *Invalid(problem.FieldError{Field: field, Message: message})
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "string"
	case "bool":
		return "boolean"
	case "slice", "array":
		return "array"
	case "struct", "map":
		return "object"
	default:
		return "number in range"
	}
}
