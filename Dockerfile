# The hub's image: the `auction-hub` console script and its pinned dependencies, run as a non-root user.
# One image for every hub process; docker-compose.yml picks the subcommand per service (migrate, worker, api,
# connect postgres, demo-data). Build: `docker build -t auction-hub:local .` (compose does it for you).
# Every dependency ships a manylinux x86_64 wheel for CPython 3.11, so no compiler is needed on amd64; on an
# arm64 host pip falls back to wheels for aarch64 where they exist.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src

# Dependencies first, read from pyproject.toml alone, so that a code change does not reinstall them.
COPY pyproject.toml ./
RUN python -c "import tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; print('\n'.join(deps))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt

# Then the project itself (a regular, non-editable install: the source tree is not needed at run time).
COPY . .
RUN pip install --no-deps . \
    && auction-hub --help > /dev/null


FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="auction-hub" \
      org.opencontainers.image.description="Change-data-capture hub and search front of a B2B car auction marketplace"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

# A fixed, non-root uid/gid; its home is the working directory, where Faust keeps its `<app-id>-data` folder.
RUN groupadd --system --gid 10001 hub \
    && useradd --system --uid 10001 --gid hub --home-dir /var/lib/auction-hub --create-home \
        --shell /usr/sbin/nologin hub

COPY --from=build /opt/venv /opt/venv
WORKDIR /var/lib/auction-hub
USER 10001:10001

# 8000: `auction-hub api`; 6066: the worker's metrics page (AUCTION_HUB_METRICS_HOST=0.0.0.0 to reach it).
EXPOSE 8000 6066
ENTRYPOINT ["auction-hub"]
CMD ["--help"]
