FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY api api
COPY domain domain
COPY jobs jobs
COPY cli cli
COPY integrations integrations
COPY alembic alembic
RUN pip install --no-cache-dir .
# The app reads alembic/ and alembic.ini next to the packages; run from the source tree.
ENV PYTHONPATH=/app
EXPOSE 8000
CMD ["loyalty", "serve", "--no-jobs", "--host", "0.0.0.0", "--port", "8000"]
