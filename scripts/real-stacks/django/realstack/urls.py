from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse, JsonResponse
from django.urls import path


@login_required
def profile(request):
    # settings.LOGIN_REDIRECT_URL's default is /accounts/profile/: where LoginView sends a user.
    # JSON, so that the scenario can check whose session it is (a check reads JSON pointers).
    return JsonResponse({"username": request.user.get_username(), "authenticated": True})


def health(request):
    return HttpResponse("ok")


urlpatterns = [
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/profile/", profile, name="profile"),
    path("health", health),
]
