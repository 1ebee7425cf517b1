# Multi-stage build of a static parley binary into a small non-root image.
# The development machines have no Docker engine, so this file is kept
# simple and has not been built there (see README.md).
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/parley ./cmd/parley

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/parley /usr/local/bin/parley
WORKDIR /home/nonroot
USER nonroot:nonroot
EXPOSE 5060/udp 5060/tcp 9060/tcp 10000-10099/udp
ENTRYPOINT ["/usr/local/bin/parley"]
