package paycard_test

import (
	"fmt"

	"github.com/microshop/microshop/pkg/paycard"
)

func Example() {
	for _, n := range []string{"4242424242424242", "4242424242424241", "4242 4242 4242 4242"} {
		fmt.Println(paycard.Valid(n), paycard.Last4(n))
	}
	// Output:
	// true 4242
	// false 4241
	// false 4242
}
