package main

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"

	"github.com/microshop/microshop/services/gateway/internal/storefront"
)

// browser is an HTTP client with cookies that does not follow redirects,
// sending forms the way a browser on the shop's own page does.
type browser struct {
	t    *testing.T
	base string
	c    *http.Client
}

func newBrowser(t *testing.T, base string) *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &browser{t: t, base: base, c: &http.Client{Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *browser) do(method, path string, form url.Values, header map[string]string) (*http.Response, string) {
	b.t.Helper()
	req, err := http.NewRequestWithContext(b.t.Context(), method, b.base+path, strings.NewReader(form.Encode()))
	if err != nil {
		b.t.Fatal(err)
	}
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", b.base)
		req.Header.Set("Sec-Fetch-Site", "same-origin")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	return resp, string(body)
}

func (b *browser) want(method, path string, form url.Values, status int) (*http.Response, string) {
	b.t.Helper()
	resp, body := b.do(method, path, form, nil)
	if resp.StatusCode != status {
		b.t.Fatalf("%s %s = %d, want %d\n%s", method, path, resp.StatusCode, status, body)
	}
	return resp, body
}

// TestStorefront walks the pages in front of the fake services: browsing
// needs no login, the session cookie is HttpOnly and SameSite, a
// cross-origin form is refused, markup in the catalog is shown as text,
// a checkout leads to the order's page, and the admin page is the admin's.
// The browser test in deploy/local runs the real stack in Chromium.
func TestStorefront(t *testing.T) {
	svc := startGateway(t)
	b := newBrowser(t, svc.URL)

	resp, body := b.want("GET", "/", nil, http.StatusOK)
	if got := resp.Header.Get("Content-Security-Policy"); got != storefront.Policy {
		t.Errorf("Content-Security-Policy = %q, want %q", got, storefront.Policy)
	}
	if !strings.Contains(body, "Classic mug") || !strings.Contains(body, `src="/images/MUG-CLASSIC.svg"`) {
		t.Errorf("the catalog does not show the mug with its image:\n%s", body)
	}

	_, body = b.want("GET", "/products/MARKUP", nil, http.StatusOK)
	for _, raw := range []string{`<script>alert`, `<img src=x`} {
		if strings.Contains(body, raw) {
			t.Errorf("the product page holds the raw markup %q:\n%s", raw, body)
		}
	}
	if !strings.Contains(body, `&lt;script&gt;alert(&#34;name&#34;)&lt;/script&gt;`) {
		t.Errorf("the product page does not show the name's markup as text:\n%s", body)
	}

	// A form posted by another site is refused, whatever its fields.
	creds := url.Values{"username": {"alice"}, "password": {"alice-demo"}, "next": {"/cart"}}
	for name, h := range map[string]map[string]string{
		"Sec-Fetch-Site cross-site": {"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"},
		"Origin of another host":    {"Sec-Fetch-Site": "", "Origin": "https://evil.example"},
	} {
		resp, body := b.do("POST", "/login", creds, h)
		if resp.StatusCode != http.StatusForbidden || len(resp.Cookies()) != 0 {
			t.Errorf("%s: POST /login = %d with cookies %v, want 403 and none\n%s", name, resp.StatusCode, resp.Cookies(), body)
		}
	}

	resp, body = b.do("POST", "/login", url.Values{"username": {"alice"}, "password": {"wrong"}}, nil)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "wrong password") {
		t.Errorf("a wrong password = %d, want 401 with the reason\n%s", resp.StatusCode, body)
	}

	resp, _ = b.want("POST", "/login", creds, http.StatusSeeOther)
	if loc := resp.Header.Get("Location"); loc != "/cart" {
		t.Errorf("after login, Location = %q, want /cart", loc)
	}
	var session *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "session" {
			session = c
		}
	}
	if session == nil || !session.HttpOnly || session.SameSite != http.SameSiteLaxMode || session.Path != "/" || session.Value == "" {
		t.Fatalf("session cookie = %+v, want a value, HttpOnly, SameSite=Lax, Path=/", session)
	}

	// An open redirect through the login page is not possible.
	resp, _ = b.want("POST", "/login", url.Values{"username": {"alice"}, "password": {"alice-demo"}, "next": {"//evil.example/"}}, http.StatusSeeOther)
	if loc := resp.Header.Get("Location"); loc != "/" {
		t.Errorf("login with next=//evil.example/ redirects to %q, want /", loc)
	}

	b.want("POST", "/cart", url.Values{"sku": {"MUG-CLASSIC"}, "quantity": {"2"}}, http.StatusSeeOther)
	b.want("POST", "/cart", url.Values{"sku": {"TEE-LOGO"}}, http.StatusSeeOther)
	_, body = b.want("GET", "/cart", nil, http.StatusOK)
	if !strings.Contains(body, "49.00 EUR") { // 2 × 12.00 + 25.00
		t.Errorf("the cart does not show the total 49.00 EUR:\n%s", body)
	}
	key := between(body, `name="key" value="`, `"`)
	resp, _ = b.want("POST", "/checkout", url.Values{"card": {"4242424242424242"}, "key": {key}}, http.StatusSeeOther)
	orderPath := resp.Header.Get("Location")
	if !strings.HasPrefix(orderPath, "/orders/") {
		t.Fatalf("checkout redirects to %q, want the order's page", orderPath)
	}
	_, body = b.want("GET", orderPath, nil, http.StatusOK)
	if !strings.Contains(body, `id="status">PENDING<`) && !strings.Contains(body, `id="status">CONFIRMED<`) {
		t.Errorf("the order page shows no status:\n%s", body)
	}
	if _, body = b.want("GET", "/cart", nil, http.StatusOK); !strings.Contains(body, "The cart is empty") {
		t.Errorf("the cart is not empty after the checkout:\n%s", body)
	}

	if _, body = b.want("GET", "/admin", nil, http.StatusForbidden); !strings.Contains(body, "admin role") {
		t.Errorf("alice on the admin page: %s", body)
	}
	b.want("POST", "/logout", nil, http.StatusSeeOther)
	if resp, _ := b.want("GET", "/admin", nil, http.StatusSeeOther); resp.Header.Get("Location") != "/login?next=%2Fadmin" {
		t.Errorf("a visitor on the admin page is sent to %q, want the login page", resp.Header.Get("Location"))
	}

	b.want("POST", "/login", url.Values{"username": {"admin"}, "password": {"admin-demo"}, "next": {"/admin"}}, http.StatusSeeOther)
	_, body = b.want("GET", "/admin", nil, http.StatusOK)
	for _, want := range []string{`data-upstream="inventory"`, `data-upstream="order"`, `class="breaker closed"`, `name="latency" value="0s"`} {
		if !strings.Contains(body, want) {
			t.Errorf("the admin page lacks %s:\n%s", want, body)
		}
	}
	b.want("POST", "/admin/faults", url.Values{"latency": {"250ms"}, "failure_percent": {"20"}}, http.StatusSeeOther)
	if _, body = b.want("GET", "/admin?done=faults", nil, http.StatusOK); !strings.Contains(body, `name="latency" value="250ms"`) || !strings.Contains(body, `value="20"`) {
		t.Errorf("the admin page does not show the faults just set:\n%s", body)
	}
	if _, body = b.want("POST", "/admin/faults", url.Values{"latency": {"forever"}, "failure_percent": {"20"}}, http.StatusUnprocessableEntity); !strings.Contains(body, "latency") {
		t.Errorf("a bad latency is not explained:\n%s", body)
	}
	b.want("POST", "/admin/stock", url.Values{"sku": {"TEE-LOGO"}, "delta": {"5"}}, http.StatusSeeOther)
	if _, body = b.want("GET", "/products/TEE-LOGO", nil, http.StatusOK); !strings.Contains(body, `id="available">8<`) {
		t.Errorf("the stock adjustment did not reach the product page (3 + 5):\n%s", body)
	}
}

// between is the text of s after the first start, up to end.
func between(s, start, end string) string {
	_, after, _ := strings.Cut(s, start)
	v, _, _ := strings.Cut(after, end)
	return v
}
