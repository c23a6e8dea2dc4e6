# CI's stand-in for the Dockerfile at the root (make compose-test): no
# registry reaches the CI machine, so no Go builder or distroless image can
# be pulled. The programs are built on the host exactly as the Dockerfile
# builds them (static, -trimpath, not stripped) and copied FROM scratch; the
# context is the directory holding the binaries, and the target picks the
# program as in the Dockerfile:
#
#   docker build -f deploy/compose/program.Dockerfile --target order -t microshop-local/order:dev .run/compose/bin
#
# Each stage's runtime — path, user, entrypoint, healthcheck — is the
# Dockerfile's stage of the same name, which deploy/local/stack's
# TestDockerfile keeps so.

FROM scratch AS gateway
COPY gateway /usr/local/bin/
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/gateway"]
HEALTHCHECK --interval=5s --timeout=4s --start-period=20s --retries=5 CMD ["/usr/local/bin/gateway", "healthcheck"]

FROM scratch AS order
COPY order /usr/local/bin/
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/order"]
HEALTHCHECK --interval=5s --timeout=4s --start-period=20s --retries=5 CMD ["/usr/local/bin/order", "healthcheck"]

FROM scratch AS inventory
COPY inventory /usr/local/bin/
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/inventory"]
HEALTHCHECK --interval=5s --timeout=4s --start-period=20s --retries=5 CMD ["/usr/local/bin/inventory", "healthcheck"]

FROM scratch AS payment
COPY payment /usr/local/bin/
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/payment"]
HEALTHCHECK --interval=5s --timeout=4s --start-period=20s --retries=5 CMD ["/usr/local/bin/payment", "healthcheck"]

FROM scratch AS psp
COPY psp /usr/local/bin/
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/psp"]
HEALTHCHECK --interval=5s --timeout=4s --start-period=20s --retries=5 CMD ["/usr/local/bin/psp", "healthcheck"]

FROM scratch AS broker
COPY broker /usr/local/bin/
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/broker"]
HEALTHCHECK --interval=5s --timeout=4s --start-period=20s --retries=5 CMD ["/usr/local/bin/broker", "healthcheck"]

FROM scratch AS probe
COPY probe /usr/local/bin/
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/probe"]
HEALTHCHECK --interval=5s --timeout=4s --start-period=20s --retries=5 CMD ["/usr/local/bin/probe", "healthcheck"]
