// Package api holds the gateway's public contract, the OpenAPI 3 document of
// /api/v1, and a validator that checks real requests and responses against
// it. The document is hand-written: it is the contract clients code against,
// and tests prove the running gateway keeps it.
package api

import (
	"context"
	_ "embed"
	"fmt"
	"net/http"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// SpecYAML is the OpenAPI document as written.
//
//go:embed openapi.yaml
var SpecYAML []byte

// Load parses and validates the document.
func Load(ctx context.Context) (*openapi3.T, error) {
	doc, err := openapi3.NewLoader().LoadFromData(SpecYAML)
	if err != nil {
		return nil, fmt.Errorf("load openapi document: %w", err)
	}
	if err := doc.Validate(ctx); err != nil {
		return nil, fmt.Errorf("validate openapi document: %w", err)
	}
	return doc, nil
}

// Validator checks real exchanges against the document. It is safe for
// concurrent use.
type Validator struct {
	router routers.Router
}

// NewValidator returns a Validator for doc.
func NewValidator(doc *openapi3.T) (*Validator, error) {
	r, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("route openapi document: %w", err)
	}
	return &Validator{router: r}, nil
}

// CheckResponse returns an error unless the document has an operation for
// req and allows a response with this status, headers and body to it: an
// undocumented status code, content type or body shape is an error.
func (v *Validator) CheckResponse(ctx context.Context, req *http.Request, status int, header http.Header, body []byte) error {
	route, params, err := v.router.FindRoute(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", req.Method, req.URL.Path, err)
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request:    req,
			PathParams: params,
			Route:      route,
			Options:    &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
		},
		Status:  status,
		Header:  header,
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	in.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(ctx, in); err != nil {
		return fmt.Errorf("%s %s -> %d: %w", req.Method, req.URL.Path, status, err)
	}
	return nil
}
