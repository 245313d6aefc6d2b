module example.com/obskit/go-service

go 1.23
