"""The Celery worker side of vidsearch: ``celery -A workers.app worker -Q embed`` (or ``vidsearch worker``)."""
