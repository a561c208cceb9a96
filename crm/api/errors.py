from rest_framework import exceptions, views


def exception_handler(exc, context):
    """DRF's error responses, with a 400's field errors also summed up in
    `detail` ("status: ..."), so every error has a `detail` to show."""
    response = views.exception_handler(exc, context)
    if response is not None and isinstance(exc, exceptions.ValidationError):
        errors = response.data if isinstance(response.data, dict) else {"input": response.data}
        response.data = {"detail": summary(errors), "errors": errors}
    return response


def summary(errors: dict) -> str:
    """One line naming each field and what is wrong with it."""
    return "; ".join(f"{field}: {' '.join(_messages(found))}" for field, found in errors.items())


def _messages(found) -> list[str]:
    if isinstance(found, dict):
        return [summary(found)]
    if isinstance(found, list):
        return [message for item in found for message in _messages(item)]
    return [str(found)]
