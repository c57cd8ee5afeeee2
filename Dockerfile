# Build a static binary, then ship it alone on a distroless, non-root base.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/canarybot ./cmd/canarybot

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/canarybot /usr/local/bin/canarybot
USER nonroot:nonroot
WORKDIR /work
ENTRYPOINT ["/usr/local/bin/canarybot"]
CMD ["--help"]
