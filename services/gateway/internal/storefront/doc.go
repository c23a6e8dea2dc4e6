// Package storefront is the shop's browser front end, served by the gateway
// at /: the catalog, a product page, the cart, log in and out, checkout with
// the payment provider simulator's test cards, an order page that follows
// the checkout saga step by step, and an admin page (the simulator's
// faults, stock, the gateway's breakers and limiters).
//
// Pages are rendered on the server with html/template, which escapes every
// value for its context; the few scripts are hand-written, embedded with
// the templates, and only make pages live (an order's timeline, the admin
// page's state): every page works without JavaScript.
//
// The storefront holds no business logic and calls no service itself: it
// sends each request through the gateway's own public API (/api/v1), in
// process, with the browser's access token, so that authentication,
// validation and limits are the API's, once.
//
// Sessions: the access token from POST /api/v1/login is kept in an
// HttpOnly, SameSite=Lax cookie (Secure behind TLS), which scripts cannot
// read. Every state-changing request is a POST checked by net/http's
// CrossOriginProtection (Sec-Fetch-Site, then Origin against Host), so
// another site cannot submit a form here with the visitor's cookie. Every
// page carries a Content-Security-Policy that allows scripts, styles,
// images and requests from this origin only and no inline script.
package storefront
