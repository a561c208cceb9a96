"""API tokens in the admin (Knox → Auth tokens): adding one shows its key once;
only a hash of it is stored, so it can never be shown again. Deleting a
token revokes it at once."""

import knox.admin  # registers knox's own admin first, which this one replaces
from django.contrib import admin, messages
from knox.models import AuthToken


class TokenAdmin(knox.admin.AuthTokenAdmin):
    list_display = ["token_key", "user", "created", "expiry"]
    list_select_related = ["user"]
    search_fields = ["token_key", "user__username"]

    def save_model(self, request, obj, form, change):
        admin.ModelAdmin.save_model(self, request, obj, form, change)
        if not change:
            self.message_user(
                request,
                f"The token for {obj.user.get_username()} is {form.token} . Copy it now: "
                "it is stored hashed and cannot be shown again. Scripts send it as "
                '"Authorization: Token <token>".',
                messages.WARNING,
            )


admin.site.unregister(AuthToken)
admin.site.register(AuthToken, TokenAdmin)
