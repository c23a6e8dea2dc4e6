package storefront

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
)

func TestLocalPath(t *testing.T) {
	for _, c := range []struct{ next, want string }{
		{"/cart", "/cart"},
		{"/orders/abc?x=1", "/orders/abc?x=1"},
		{"", "/"},
		{"cart", "/"},
		{"//evil.example/", "/"},
		{`/\evil.example`, "/"},
		{"https://evil.example/", "/"},
		{"/%2F%2Fevil.example", "/%2F%2Fevil.example"}, // a path on this site
	} {
		if got := localPath(c.next); got != c.want {
			t.Errorf("localPath(%q) = %q, want %q", c.next, got, c.want)
		}
	}
}

// FuzzLocalPath: whatever a login form's next holds, the redirect stays on
// this site.
func FuzzLocalPath(f *testing.F) {
	for _, s := range []string{"/cart", "//evil", `/\evil`, "https://x/", "/a?b=//c", " /x", "/\t/evil"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, next string) {
		got := localPath(next)
		u, err := url.Parse(got)
		if err != nil || !strings.HasPrefix(got, "/") || strings.HasPrefix(got, "//") || strings.Contains(got, `\`) || u.Host != "" || u.Scheme != "" {
			t.Errorf("localPath(%q) = %q: not a path on this site", next, got)
		}
	})
}

// cartOf reads a cart cookie with value v as a request would bring it.
func cartOf(v string) []cartLine {
	c, _ := gin.CreateTestContext(httptest.NewRecorder())
	c.Request = httptest.NewRequest(http.MethodGet, "/cart", nil)
	c.Request.Header.Set("Cookie", cartCookie+"="+v)
	return readCart(c)
}

func TestReadCart(t *testing.T) {
	got := cartOf("MUG-CLASSIC:2|TEE:1|TEE:5|bad:1|MUG:0|CAP:100|HAT:x|:3|BAG:99")
	want := []cartLine{{"MUG-CLASSIC", 2}, {"TEE", 1}, {"BAG", 99}}
	if len(got) != len(want) {
		t.Fatalf("readCart = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("line %d = %v, want %v", i, got[i], want[i])
		}
	}
}

// FuzzReadCart: the cart cookie is the browser's to write; whatever it
// holds, the cart read from it has at most maxCartLines lines of distinct
// valid SKUs, each of 1 to maxCartQuantity.
func FuzzReadCart(f *testing.F) {
	for _, s := range []string{"MUG:1", "A:1|A:2", "A:99|B:100", "|||", "A:-1", "A:1:2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		lines := cartOf(v)
		if len(lines) > maxCartLines {
			t.Fatalf("%d lines, want at most %d", len(lines), maxCartLines)
		}
		seen := map[string]bool{}
		for _, l := range lines {
			if !skuPattern.MatchString(l.SKU) || seen[l.SKU] || l.Quantity < 1 || l.Quantity > maxCartQuantity {
				t.Errorf("cart %q gave the line %+v", v, l)
			}
			seen[l.SKU] = true
		}
	})
}
