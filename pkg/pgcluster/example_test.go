package pgcluster_test

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/microshop/microshop/pkg/pgcluster"
)

// Example starts a cluster, creates a database and queries it. It has no
// Output comment, so go test compiles it but does not run it: it needs
// Postgres installed.
func Example() {
	ctx := context.Background()
	c, err := pgcluster.Start(ctx, pgcluster.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer func() {
		if err := c.Stop(ctx); err != nil {
			fmt.Println(err)
		}
	}()

	url, err := c.CreateDatabase(ctx, "shop")
	if err != nil {
		fmt.Println(err)
		return
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close(ctx)

	var name string
	if err := conn.QueryRow(ctx, "SELECT current_database()").Scan(&name); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(name)
}
