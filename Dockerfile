# Build a static binary, then ship it alone on a distroless, non-root base.
#
# The base images are build arguments so that a registry mirror, or the
# stand-ins deploy/image_test.go builds offline, can take their place.
ARG GO_IMAGE=golang:1.26
ARG RUNTIME_IMAGE=gcr.io/distroless/static-debian12:nonroot

FROM ${GO_IMAGE} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/canarybot ./cmd/canarybot

FROM ${RUNTIME_IMAGE}
COPY --from=build /out/canarybot /usr/local/bin/canarybot
USER nonroot:nonroot
# distroless's home for nonroot, owned by that user: evidence and the state
# file are written here unless flags say otherwise.
WORKDIR /home/nonroot
ENTRYPOINT ["/usr/local/bin/canarybot"]
CMD ["--help"]
