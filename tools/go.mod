// Module tools pins the programs microshop builds from the Go module proxy
// (linters and, later, Consul, Jaeger, k6). It is outside go.work so their
// dependencies never mix with the services'. Run one with
//   go tool -modfile=tools/go.mod <name>
module github.com/microshop/microshop/tools

go 1.26.8

tool honnef.co/go/tools/cmd/staticcheck

require (
	github.com/BurntSushi/toml v1.4.1-0.20240526193622-a339e1f7089c // indirect
	golang.org/x/exp/typeparams v0.0.0-20231108232855-2478ac86f678 // indirect
	golang.org/x/mod v0.41.0 // indirect
	golang.org/x/sync v0.23.0 // indirect
	golang.org/x/tools v0.51.0 // indirect
	honnef.co/go/tools v0.8.2 // indirect
)
