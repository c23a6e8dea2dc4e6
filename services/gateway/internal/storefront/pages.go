package storefront

import (
	"crypto/rand"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	dto "github.com/prometheus/client_model/go"

	"github.com/microshop/microshop/pkg/money"
	"github.com/microshop/microshop/pkg/problem"
	"github.com/microshop/microshop/services/gateway/internal/auth"
)

// product is a catalog entry as the API answers it.
type product struct {
	SKU         string       `json:"sku"`
	Name        string       `json:"name"`
	Description string       `json:"description"`
	Price       money.Amount `json:"price"`
	ImageRef    string       `json:"image_ref"`
	Available   int64        `json:"available"`
}

type productPage struct {
	Items      []product `json:"items"`
	NextCursor string    `json:"next_cursor"`
}

// order is an order as the API answers it.
type order struct {
	ID           string       `json:"id"`
	Status       string       `json:"status"`
	Total        money.Amount `json:"total"`
	CancelReason string       `json:"cancel_reason"`
	CreatedAt    time.Time    `json:"created_at"`
	UpdatedAt    time.Time    `json:"updated_at"`
	Lines        []struct {
		SKU       string       `json:"sku"`
		Quantity  int64        `json:"quantity"`
		UnitPrice money.Amount `json:"unit_price"`
	} `json:"lines"`
	History []struct {
		Status string    `json:"status"`
		Reason string    `json:"reason"`
		At     time.Time `json:"at"`
	} `json:"history"`
}

// Card is one of the payment provider simulator's test cards
// (services/psp/README.md).
type Card struct {
	Number, Label string
}

// TestCards are offered at checkout, the first one chosen.
var TestCards = []Card{
	{"4242424242424242", "succeeds"},
	{"4000000000000002", "is declined"},
	{"4000000000009995", "has insufficient funds"},
	{"4000000000000259", "hangs: charged, but the answer never comes"},
}

// pageSize is how many products the catalog shows at once.
const pageSize = 12

var (
	skuPattern    = regexp.MustCompile(`^[A-Z0-9-]{1,64}$`)
	idPattern     = regexp.MustCompile(`^[A-Za-z0-9-]{1,64}$`)
	cursorPattern = regexp.MustCompile(`^[A-Za-z0-9_=-]{0,512}$`)
)

var funcs = template.FuncMap{
	// money writes minor units with two decimals, e.g. 19.90 EUR.
	"money": func(a money.Amount) string {
		sign := ""
		m := a.Minor
		if m < 0 {
			sign, m = "-", -m
		}
		return fmt.Sprintf("%s%d.%02d %s", sign, m/100, m%100, a.Currency)
	},
	// since is d after start in milliseconds, e.g. "+35 ms".
	"since": func(start, t time.Time) string {
		return fmt.Sprintf("+%d ms", t.Sub(start).Milliseconds())
	},
	// outcome classes a history reason for the timeline's colours.
	"outcome": func(reason string) string {
		switch {
		case strings.Contains(reason, "refused"), strings.Contains(reason, "timed out"), strings.Contains(reason, "cancelled"):
			return "bad"
		case strings.Contains(reason, "compensat"):
			return "undo"
		case strings.Contains(reason, "succeeded"), strings.Contains(reason, "confirmed"):
			return "good"
		}
		return "info"
	},
	"lower": strings.ToLower,
	"mulf":  func(a, b float64) float64 { return a * b },
}

func (s *Storefront) catalog(c *gin.Context) {
	q := url.Values{"limit": {strconv.Itoa(pageSize)}}
	search := c.Query("q")
	if search != "" {
		q.Set("q", search)
	}
	if cur := c.Query("cursor"); cur != "" && cursorPattern.MatchString(cur) {
		q.Set("cursor", cur)
	}
	var page productPage
	if err := s.call(c, http.MethodGet, "/api/v1/products?"+q.Encode(), nil, nil, &page); err != nil {
		s.fail(c, err)
		return
	}
	next := ""
	if page.NextCursor != "" {
		next = "/?" + url.Values{"q": {search}, "cursor": {page.NextCursor}}.Encode()
	}
	s.render(c, http.StatusOK, "catalog", view{Data: struct {
		Query    string
		Products []product
		Next     string
	}{search, page.Items, next}})
}

func (s *Storefront) product(c *gin.Context) {
	sku := c.Param("sku")
	if !skuPattern.MatchString(sku) {
		s.fail(c, &apiProblem{Details: problem.New(http.StatusNotFound, "no such product")})
		return
	}
	var p product
	if err := s.call(c, http.MethodGet, "/api/v1/products/"+sku, nil, nil, &p); err != nil {
		s.fail(c, err)
		return
	}
	s.render(c, http.StatusOK, "product", view{Data: p})
}

// cartLine is a line of the cart cookie.
type cartLine struct {
	SKU      string `json:"sku"`
	Quantity int64  `json:"quantity"`
}

// Cart bounds, within the API's for an order.
const (
	maxCartLines    = 20
	maxCartQuantity = 99
)

// readCart reads the cart cookie; what does not parse is dropped.
func readCart(c *gin.Context) []cartLine {
	ck, err := c.Request.Cookie(cartCookie)
	if err != nil {
		return nil
	}
	var lines []cartLine
	for item := range strings.SplitSeq(ck.Value, "|") {
		sku, qty, ok := strings.Cut(item, ":")
		n, err := strconv.ParseInt(qty, 10, 64)
		if !ok || err != nil || !skuPattern.MatchString(sku) || n < 1 || n > maxCartQuantity ||
			slices.ContainsFunc(lines, func(l cartLine) bool { return l.SKU == sku }) {
			continue
		}
		lines = append(lines, cartLine{sku, n})
		if len(lines) == maxCartLines {
			break
		}
	}
	return lines
}

func (s *Storefront) writeCart(c *gin.Context, lines []cartLine) {
	if len(lines) == 0 {
		s.setCookie(c, cartCookie, "", -1)
		return
	}
	items := make([]string, len(lines))
	for i, l := range lines {
		items[i] = l.SKU + ":" + strconv.FormatInt(l.Quantity, 10)
	}
	s.setCookie(c, cartCookie, strings.Join(items, "|"), 7*24*3600)
}

func (s *Storefront) addToCart(c *gin.Context) {
	sku := c.PostForm("sku")
	n, err := strconv.ParseInt(c.DefaultPostForm("quantity", "1"), 10, 64)
	if !skuPattern.MatchString(sku) || err != nil || n < 1 || n > maxCartQuantity {
		s.fail(c, &apiProblem{Details: problem.New(http.StatusUnprocessableEntity, "choose a product and a quantity from 1 to 99")})
		return
	}
	// The product must exist; its stock is checked at checkout.
	if err := s.call(c, http.MethodGet, "/api/v1/products/"+sku, nil, nil, nil); err != nil {
		s.fail(c, err)
		return
	}
	lines := readCart(c)
	i := slices.IndexFunc(lines, func(l cartLine) bool { return l.SKU == sku })
	switch {
	case i >= 0:
		lines[i].Quantity = min(lines[i].Quantity+n, maxCartQuantity)
	case len(lines) < maxCartLines:
		lines = append(lines, cartLine{sku, n})
	default:
		s.fail(c, &apiProblem{Details: problem.New(http.StatusUnprocessableEntity, fmt.Sprintf("the cart holds at most %d products", maxCartLines))})
		return
	}
	s.writeCart(c, lines)
	c.Redirect(http.StatusSeeOther, "/cart")
}

func (s *Storefront) removeFromCart(c *gin.Context) {
	sku := c.PostForm("sku")
	s.writeCart(c, slices.DeleteFunc(readCart(c), func(l cartLine) bool { return l.SKU == sku }))
	c.Redirect(http.StatusSeeOther, "/cart")
}

// cartView is the cart page's data.
type cartView struct {
	Lines []struct {
		Product  product
		Quantity int64
		Subtotal money.Amount
	}
	Total money.Amount
	Cards []Card
	// Key is the Idempotency-Key of the checkout form: sending the form
	// twice places one order.
	Key string
}

func (s *Storefront) cartData(c *gin.Context) (cartView, error) {
	v := cartView{Cards: TestCards, Key: "web-" + rand.Text()}
	for _, l := range readCart(c) {
		var p product
		if err := s.call(c, http.MethodGet, "/api/v1/products/"+l.SKU, nil, nil, &p); err != nil {
			return v, err
		}
		sub, err := p.Price.Mul(l.Quantity)
		if err != nil {
			return v, err
		}
		if v.Total, err = v.Total.Add(sub); err != nil {
			return v, err
		}
		v.Lines = append(v.Lines, struct {
			Product  product
			Quantity int64
			Subtotal money.Amount
		}{p, l.Quantity, sub})
	}
	return v, nil
}

func (s *Storefront) cart(c *gin.Context) {
	v, err := s.cartData(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	s.render(c, http.StatusOK, "cart", view{Data: v})
}

func (s *Storefront) checkout(c *gin.Context) {
	if _, ok := currentSession(c); !ok {
		c.Redirect(http.StatusSeeOther, "/login?next=/cart")
		return
	}
	lines := readCart(c)
	if len(lines) == 0 {
		c.Redirect(http.StatusSeeOther, "/cart")
		return
	}
	req := struct {
		CardNumber string     `json:"card_number"`
		Lines      []cartLine `json:"lines"`
	}{c.PostForm("card"), lines}
	var o order
	err := s.call(c, http.MethodPost, "/api/v1/orders", http.Header{"Idempotency-Key": {c.PostForm("key")}}, req, &o)
	if err != nil {
		v, cartErr := s.cartData(c)
		p, ok := err.(*apiProblem)
		if cartErr != nil || !ok || p.Status == http.StatusUnauthorized {
			s.fail(c, err)
			return
		}
		s.render(c, p.Status, "cart", view{Problem: &p.Details, Data: v})
		return
	}
	s.writeCart(c, nil)
	c.Redirect(http.StatusSeeOther, "/orders/"+o.ID)
}

func (s *Storefront) loginForm(c *gin.Context) {
	s.render(c, http.StatusOK, "login", view{Data: localPath(c.Query("next"))})
}

// localPath is next if it is a path on this site, else "/": a login must
// not send the browser to another site.
func localPath(next string) string {
	u, err := url.Parse(next)
	if err != nil || next == "" || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") ||
		strings.Contains(next, `\`) || u.Host != "" || u.Scheme != "" {
		return "/"
	}
	return next
}

func (s *Storefront) login(c *gin.Context) {
	next := localPath(c.PostForm("next"))
	var tok struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	creds := map[string]string{"username": c.PostForm("username"), "password": c.PostForm("password")}
	if err := s.call(c, http.MethodPost, "/api/v1/login", nil, creds, &tok); err != nil {
		p, ok := err.(*apiProblem)
		if !ok {
			s.fail(c, err)
			return
		}
		s.render(c, p.Status, "login", view{Problem: &p.Details, Data: next})
		return
	}
	s.setCookie(c, sessionCookie, tok.AccessToken, tok.ExpiresIn)
	c.Redirect(http.StatusSeeOther, next)
}

func (s *Storefront) logout(c *gin.Context) {
	s.setCookie(c, sessionCookie, "", -1)
	c.Redirect(http.StatusSeeOther, "/")
}

// requireUser redirects a visitor to the login page and answers whether
// the request may go on.
func requireUser(c *gin.Context) bool {
	if _, ok := currentSession(c); ok {
		return true
	}
	c.Redirect(http.StatusSeeOther, "/login?next="+url.QueryEscape(c.Request.URL.Path))
	return false
}

func (s *Storefront) orders(c *gin.Context) {
	if !requireUser(c) {
		return
	}
	if sess, _ := currentSession(c); sess.Role != auth.RoleCustomer {
		s.render(c, http.StatusOK, "orders", view{})
		return
	}
	var page struct {
		Items []order `json:"items"`
	}
	if err := s.call(c, http.MethodGet, "/api/v1/orders?limit=50", nil, nil, &page); err != nil {
		s.fail(c, err)
		return
	}
	s.render(c, http.StatusOK, "orders", view{Data: page.Items})
}

func (s *Storefront) readOrder(c *gin.Context) (order, bool) {
	var o order
	if !requireUser(c) {
		return o, false
	}
	id := c.Param("id")
	if !idPattern.MatchString(id) {
		s.fail(c, &apiProblem{Details: problem.New(http.StatusNotFound, "no such order")})
		return o, false
	}
	if err := s.call(c, http.MethodGet, "/api/v1/orders/"+id, nil, nil, &o); err != nil {
		s.fail(c, err)
		return o, false
	}
	return o, true
}

// order is the order's page; its script refreshes the live part from
// orderLive until the order is final (without scripts, the page refreshes
// itself while the order is PENDING).
func (s *Storefront) order(c *gin.Context) {
	if o, ok := s.readOrder(c); ok {
		s.render(c, http.StatusOK, "order", view{Data: orderPage{order: o, Trace: s.orderTrace(c, o)}})
	}
}

// orderPage is the order page's data: the order, and its checkout's trace
// (nil when no tracing backend is configured). The trace is read once per
// page: its script refreshes the order's status and timeline only.
type orderPage struct {
	order
	Trace *waterfall
}

func (s *Storefront) orderLive(c *gin.Context) {
	if o, ok := s.readOrder(c); ok {
		secureHeaders(c)
		s.renderTemplate(c, http.StatusOK, "order", "live", o)
	}
}

// requireAdmin shows a 403 to anyone but an admin and answers whether the
// request may go on.
func (s *Storefront) requireAdmin(c *gin.Context) bool {
	if !requireUser(c) {
		return false
	}
	if sess, _ := currentSession(c); sess.Role != auth.RoleAdmin {
		s.fail(c, &apiProblem{Details: problem.New(http.StatusForbidden, "the admin page is for the admin role; log in as admin")})
		return false
	}
	return true
}

// faults are the payment provider simulator's.
type faults struct {
	Latency     string  `json:"latency"`
	FailureRate float64 `json:"failure_rate"`
}

// adminView is the admin page's data.
type adminView struct {
	Faults   faults
	Products []product
	Live     liveState
	Notice   string
}

// liveState is the part of the admin page its script refreshes.
type liveState struct {
	Breakers []breakerView
	// Limiters are the gateway's limiter_ metrics; HasLimiterMetrics is
	// false when the gateway exports none.
	Limiters          []metricView
	HasLimiterMetrics bool
}

type breakerView struct {
	Upstream, State string
	ErrorRatio      float64
	SlowCall        string
	SlowRatio       float64
	OpenFor         string
}

type metricView struct {
	Name, Labels, Value string
}

// notices are what an admin action's redirect may show.
var notices = map[string]string{
	"faults": "The payment provider's faults are set.",
	"stock":  "The stock is adjusted.",
}

func (s *Storefront) adminData(c *gin.Context) (adminView, error) {
	var v adminView
	if err := s.call(c, http.MethodGet, "/api/v1/admin/psp/faults", nil, nil, &v.Faults); err != nil {
		return v, err
	}
	for cursor := ""; ; {
		var page productPage
		q := url.Values{"limit": {"100"}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		if err := s.call(c, http.MethodGet, "/api/v1/products?"+q.Encode(), nil, nil, &page); err != nil {
			return v, err
		}
		v.Products = append(v.Products, page.Items...)
		if cursor = page.NextCursor; cursor == "" || len(v.Products) >= 1000 {
			break
		}
	}
	v.Live = s.liveState()
	v.Notice = notices[c.Query("done")]
	return v, nil
}

// liveState reads the breakers' states and the limiters' metrics now.
func (s *Storefront) liveState() liveState {
	var st liveState
	if b := s.opts.Breakers; b != nil {
		rules := b.Rules()
		names := make([]string, 0, len(rules))
		for name := range rules {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			r := rules[name]
			st.Breakers = append(st.Breakers, breakerView{
				Upstream: name, State: b.State(name).String(), ErrorRatio: r.ErrorRatio,
				SlowCall: r.SlowCall.String(), SlowRatio: r.SlowRatio, OpenFor: r.OpenFor.String(),
			})
		}
	}
	if s.opts.Metrics == nil {
		return st
	}
	families, err := s.opts.Metrics.Gather()
	if err != nil {
		s.log.Warn("gather metrics", "error", err)
	}
	for _, f := range families {
		if !strings.HasPrefix(f.GetName(), "limiter_") {
			continue
		}
		st.HasLimiterMetrics = true
		for _, m := range f.GetMetric() {
			st.Limiters = append(st.Limiters, metricView{Name: f.GetName(), Labels: labels(m), Value: value(m)})
		}
	}
	return st
}

func labels(m *dto.Metric) string {
	var b []string
	for _, l := range m.GetLabel() {
		b = append(b, l.GetName()+"="+strconv.Quote(l.GetValue()))
	}
	return strings.Join(b, " ")
}

func value(m *dto.Metric) string {
	switch {
	case m.Gauge != nil:
		return strconv.FormatFloat(m.GetGauge().GetValue(), 'g', 6, 64)
	case m.Counter != nil:
		return strconv.FormatFloat(m.GetCounter().GetValue(), 'g', 6, 64)
	case m.Histogram != nil:
		return fmt.Sprintf("%d observations", m.GetHistogram().GetSampleCount())
	case m.Summary != nil:
		return fmt.Sprintf("%d observations", m.GetSummary().GetSampleCount())
	case m.Untyped != nil:
		return strconv.FormatFloat(m.GetUntyped().GetValue(), 'g', 6, 64)
	}
	return ""
}

func (s *Storefront) admin(c *gin.Context) {
	if !s.requireAdmin(c) {
		return
	}
	v, err := s.adminData(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	s.render(c, http.StatusOK, "admin", view{Data: v})
}

func (s *Storefront) adminLive(c *gin.Context) {
	if !s.requireAdmin(c) {
		return
	}
	s.renderTemplate(c, http.StatusOK, "admin", "live", s.liveState())
}

// adminFailed shows the admin page with the API's refusal on top.
func (s *Storefront) adminFailed(c *gin.Context, err error) {
	p, ok := err.(*apiProblem)
	v, dataErr := s.adminData(c)
	if !ok || dataErr != nil || p.Status == http.StatusUnauthorized {
		s.fail(c, err)
		return
	}
	s.render(c, p.Status, "admin", view{Problem: &p.Details, Data: v})
}

func (s *Storefront) setFaults(c *gin.Context) {
	if !s.requireAdmin(c) {
		return
	}
	// The failure rate is a percentage in the form, a ratio in the API.
	pct, err := strconv.ParseFloat(c.PostForm("failure_percent"), 64)
	if err != nil {
		pct = -1 // the API refuses it with its own message
	}
	f := faults{Latency: c.PostForm("latency"), FailureRate: pct / 100}
	if err := s.call(c, http.MethodPut, "/api/v1/admin/psp/faults", nil, f, nil); err != nil {
		s.adminFailed(c, err)
		return
	}
	c.Redirect(http.StatusSeeOther, "/admin?done=faults")
}

func (s *Storefront) adjustStock(c *gin.Context) {
	if !s.requireAdmin(c) {
		return
	}
	sku := c.PostForm("sku")
	delta, err := strconv.ParseInt(c.PostForm("delta"), 10, 64)
	if !skuPattern.MatchString(sku) || err != nil {
		s.adminFailed(c, &apiProblem{Details: problem.New(http.StatusUnprocessableEntity, "choose a product and a whole number to add (negative to remove)")})
		return
	}
	if err := s.call(c, http.MethodPost, "/api/v1/admin/products/"+sku+"/stock-adjustments", nil, map[string]int64{"delta": delta}, nil); err != nil {
		s.adminFailed(c, err)
		return
	}
	c.Redirect(http.StatusSeeOther, "/admin?done=stock#stock")
}
