module github.com/braid-bft/braid

go 1.26.8
