// Package stack holds the checks of the container stack the repository
// ships: docker-compose.yaml loaded with compose-go (interpolation on) and
// checked for the rules every container of the stack keeps, each Dockerfile
// parsed with BuildKit's parser, and, when a Docker engine answers, the
// compose topology started for real with local stand-in images and cut
// apart (make compose-test). Its tests are what it is; it exports nothing.
package stack
