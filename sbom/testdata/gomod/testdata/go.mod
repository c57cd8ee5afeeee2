module example.com/trap-testdata

go 1.22

require github.com/acme/from-testdata v0.1.0
