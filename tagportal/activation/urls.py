"""The activation pages, mounted at ``/activation/`` with the namespace ``activation``."""

from django.urls import path

from . import views, views_sync

app_name = "activation"

urlpatterns = [
    path("", views.accounts, name="accounts"),
    path("accounts/<int:pk>/test/", views.test_account, name="test_account"),
    path("deliveries/", views.delivery_list, name="deliveries"),
    path("deliveries/<int:pk>/retry/", views.retry, name="retry"),
    path("dead-letters/", views.dead_letters, name="dead_letters"),
    path("audiences/<int:pk>/send/", views.send_to_audience, name="send"),
    path("audiences/<int:pk>/sync/", views_sync.audience_syncs, name="audience-syncs"),
]
