package labs

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// Lab 10's service, generated with make new-service NAME=shipping
// RECORD=shipment, and the Idempotency-Key prefix of the orders its README
// places.
const (
	newService   = "shipping"
	newRecords   = "shipments"
	lab10KeyStem = "lab-10-"
)

// checkNewService is lab 10: a service added with make new-service. Its
// evidence: shipping registered in Consul with its check passing (so the
// launcher started it: it is in the launcher's list), and an order the
// learner placed as the README does (Idempotency-Key lab-10-…) after
// shipping started, CONFIRMED, whose shipment shipping serves; a CANCELLED
// one of the learner's, if any, must have none.
func checkNewService(ctx context.Context, s Stack) (Verdict, error) {
	var v Verdict
	base, err := serviceURL(ctx, s.Consul, newService)
	if err != nil {
		v.miss("%s is not registered in Consul with a passing check (%v): run make new-service NAME=shipping RECORD=shipment, "+
			"then stop make run-full and start it again (step 1 of labs/10-new-service/README.md)", newService, err)
		return v, nil
	}
	v.see("%s is registered in Consul, its check passing, at %s", newService, base)
	m, err := scrape(ctx, base)
	if err != nil {
		return v, fmt.Errorf("read %s's metrics: %w", newService, err)
	}
	sec, frac := math.Modf(m.sum("process_start_time_seconds"))
	started := time.Unix(int64(sec), int64(frac*1e9)).UTC()

	if s.Databases["order"] == "" {
		return v, errors.New("no address for the order database: is make run-full running?")
	}
	d, closeDBs, err := openDatabases(ctx, s)
	if err != nil {
		return v, err
	}
	defer closeDBs()
	rows, err := d.Order.QueryContext(ctx,
		`SELECT id, status, created_at FROM orders WHERE idempotency_key LIKE $1 AND status <> 'PENDING' ORDER BY created_at DESC LIMIT 20`,
		lab10KeyStem+"%")
	if err != nil {
		return v, fmt.Errorf("read the orders: %w", err)
	}
	type order struct {
		id, status string
		created    time.Time
	}
	var orders []order
	for rows.Next() {
		var o order
		if err := rows.Scan(&o.id, &o.status, &o.created); err != nil {
			rows.Close()
			return v, err
		}
		// created_at is a UTC wall clock without a zone.
		o.created = time.Date(o.created.Year(), o.created.Month(), o.created.Day(), o.created.Hour(), o.created.Minute(),
			o.created.Second(), o.created.Nanosecond(), time.UTC)
		if o.created.After(started) {
			orders = append(orders, o)
		}
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return v, err
	}

	shipped := false
	for _, o := range orders {
		var shipment struct {
			ID      string `json:"id"`
			OrderID string `json:"order_id"`
			Status  string `json:"status"`
		}
		err := getJSON(ctx, base+"/v1/"+newRecords+"/"+o.id, &shipment)
		switch {
		case o.status == "CONFIRMED" && err == nil && shipment.OrderID == o.id:
			if !shipped {
				v.see("order %s, placed after %s started (%s) and CONFIRMED, has its shipment %s (%s): GET /v1/%s/%s",
					o.id, newService, started.Format(time.TimeOnly), shipment.ID, shipment.Status, newRecords, o.id)
			}
			shipped = true
		case o.status == "CONFIRMED" && err == nil:
			v.miss("order %s is CONFIRMED but %s served another order's shipment for it (%s)", o.id, newService, shipment.OrderID)
		case o.status == "CONFIRMED":
			v.miss("order %s is CONFIRMED but %s serves no shipment of it (%v): look for its OrderConfirmed in %s's log", o.id, newService, err, newService)
		case o.status == "CANCELLED" && err == nil:
			v.miss("order %s is CANCELLED but has shipment %s: only OrderConfirmed may create one", o.id, shipment.ID)
		case o.status == "CANCELLED" && !isNotFound(err):
			return v, fmt.Errorf("read the shipment of order %s: %w", o.id, err)
		case o.status == "CANCELLED":
			v.see("order %s is CANCELLED and has no shipment (404), as it should", o.id)
		}
	}
	if !shipped {
		v.miss("no order of yours (Idempotency-Key %s…) was placed and CONFIRMED since %s started at %s: place one with the good card "+
			"as step 3 of labs/10-new-service/README.md does, then GET its shipment", lab10KeyStem, newService, started.Format(time.TimeOnly))
	}
	return v, nil
}

// isNotFound reports whether err is getJSON's answer to a 404.
func isNotFound(err error) bool {
	return err != nil && strings.Contains(err.Error(), ": 404 Not Found")
}
