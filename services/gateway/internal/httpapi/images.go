package httpapi

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"html"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
)

// imageMaxAge is how long browsers and caches may keep a product image: an
// image changes only with the product's name.
const imageMaxAge = 24 * 60 * 60

// productImage serves GET /images/{sku}.svg, the image_ref the catalog
// advertises: a generated SVG tile with the product's name. It answers 404
// unless the product exists and advertises exactly this path, and 304 to a
// request whose If-None-Match holds the image's ETag.
func (a *API) productImage(c *gin.Context) {
	sku, ok := strings.CutSuffix(c.Param("file"), ".svg")
	if !ok || !skuPattern.MatchString(sku) {
		a.fail(c, notFound("no image "+c.Request.URL.Path))
		return
	}
	resp, err := a.inventory.Do(c, http.MethodGet, "/v1/products/"+sku, nil, nil, nil)
	if err != nil {
		a.fail(c, err)
		return
	}
	var p struct {
		Name     string `json:"name"`
		ImageRef string `json:"image_ref"`
	}
	switch {
	case resp.Status == http.StatusNotFound:
		a.fail(c, notFound("no image "+c.Request.URL.Path))
		return
	case resp.Status != http.StatusOK:
		a.fail(c, fmt.Errorf("look up %s in inventory: status %d", sku, resp.Status))
		return
	case json.Unmarshal(resp.Body, &p) != nil:
		a.fail(c, fmt.Errorf("decode inventory product %s", sku))
		return
	case p.ImageRef != c.Request.URL.Path:
		a.fail(c, notFound("no image "+c.Request.URL.Path))
		return
	}

	svg := productSVG(sku, p.Name)
	sum := sha256.Sum256(svg)
	etag := `"` + hex.EncodeToString(sum[:16]) + `"`
	h := c.Writer.Header()
	h.Set("Cache-Control", fmt.Sprintf("public, max-age=%d", imageMaxAge))
	h.Set("ETag", etag)
	h.Set("X-Content-Type-Options", "nosniff")
	// An SVG opened on its own is a document: it may run nothing.
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	if match := c.GetHeader("If-None-Match"); match == etag || match == "*" {
		c.Status(http.StatusNotModified)
		return
	}
	c.Data(http.StatusOK, "image/svg+xml", svg)
}

// productSVG draws a 400×400 tile in a colour of the SKU's own, with the
// product's name (cut to what fits) and SKU.
func productSVG(sku, name string) []byte {
	if r := []rune(name); len(r) > 28 {
		name = string(r[:27]) + "…"
	}
	h := fnv.New32a()
	h.Write([]byte(sku))
	hue := h.Sum32() % 360
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="400" height="400" viewBox="0 0 400 400" role="img" aria-label="%s">`, html.EscapeString(name))
	fmt.Fprintf(&b, `<rect width="400" height="400" rx="24" fill="hsl(%d,55%%,85%%)"/>`, hue)
	fmt.Fprintf(&b, `<circle cx="200" cy="160" r="90" fill="hsl(%d,45%%,55%%)"/>`, hue)
	fmt.Fprintf(&b, `<text x="200" y="300" font-family="sans-serif" font-size="24" text-anchor="middle" fill="#222">%s</text>`, html.EscapeString(name))
	fmt.Fprintf(&b, `<text x="200" y="340" font-family="monospace" font-size="16" text-anchor="middle" fill="#555">%s</text>`, html.EscapeString(sku))
	b.WriteString(`</svg>`)
	return []byte(b.String())
}
