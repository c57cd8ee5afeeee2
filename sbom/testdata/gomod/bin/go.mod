module example.com/trap-bin

go 1.22

require github.com/acme/from-bin v0.1.0
