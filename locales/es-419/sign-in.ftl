# The sign-in pages: password, second step, enrolment, required change, reset,
# invitation, emergency access, consent, the patient picker (templates/*.html).

sign-in = Iniciar sesión
username = Nombre de usuario
username-or-work-email = Nombre de usuario o correo electrónico laboral
password = Contraseña
identifier-first-hint = ¿Inicia sesión con la cuenta de su organización? Ingrese su correo electrónico laboral y deje la contraseña en blanco.
sign-in-with-passkey = Iniciar sesión con una llave de acceso
or-sign-in-with = O inicie sesión con
forgot-password = ¿Olvidó su contraseña?
link-not-connected = Su inicio de sesión con { $connector } aún no está vinculado a una cuenta de Gatehouse.
sign-in-failed = Nombre de usuario o contraseña incorrectos.
sign-in-locked = Demasiados intentos fallidos: el inicio de sesión está bloqueado para este nombre de usuario. Vuelva a intentarlo más tarde o pida a su administrador que lo desbloquee.
enter-your-password = Ingrese su contraseña.
username-too-long = El nombre de usuario es demasiado largo.
sign-in-expired = Su inicio de sesión venció
sign-in-expired-text = Este inicio de sesión ya no es válido: se agotó el tiempo o ya se usó. Empiece de nuevo.
start-again = Empezar de nuevo
signed-out = Sesión cerrada
signed-out-text = Cerró sesión. Si esta es una computadora compartida, cierre el navegador.
sign-in-again = Volver a iniciar sesión

choose-new-password = Elija una contraseña nueva
choose-your-password = Elija su contraseña
password-change-required = Debe cambiar su contraseña antes de continuar.
new-password = Contraseña nueva
new-password-again = Repita la contraseña nueva
set-password-and-continue = Establecer contraseña y continuar
set-password = Establecer contraseña
invitation-welcome = Le damos la bienvenida. Elija la contraseña con la que iniciará sesión en su cuenta:
reset-for-account = Elija una contraseña nueva para su cuenta:
reset-signs-out = Se cerrarán todas las sesiones de la cuenta.

reset-your-password = Restablecer la contraseña
reset-request-text = Ingrese su nombre de usuario o el correo electrónico de su cuenta. Enviaremos al correo electrónico de la cuenta un enlace para elegir una contraseña nueva.
username-or-email = Nombre de usuario o correo electrónico
send-me-a-link = Enviarme un enlace

two-step = Verificación en dos pasos
use-your-passkey = Use su llave de acceso: su dispositivo le pedirá su huella digital, su rostro o su PIN.
use-a-passkey = Usar una llave de acceso
passkeys-need-javascript = Las llaves de acceso necesitan JavaScript. Sin él, use un código a continuación.
or-use-a-code = O use un código
passkey-only = Su organización solo acepta una llave de acceso como segundo paso.
passkey-only-lost-totp = Si perdió sus llaves de acceso, ingrese el código de su aplicación de autenticación o uno de sus códigos de recuperación, y registrará una llave de acceso nueva antes de continuar.
passkey-only-lost = Si perdió sus llaves de acceso, ingrese uno de sus códigos de recuperación, y registrará una llave de acceso nueva antes de continuar.
passkey-only-none-totp = Aún no tiene ninguna: ingrese el código de su aplicación de autenticación o uno de sus códigos de recuperación, y registrará una llave de acceso antes de continuar.
passkey-only-none = Aún no tiene ninguna: ingrese uno de sus códigos de recuperación, y registrará una llave de acceso antes de continuar.
passkey-only-else = Si no tiene ninguno de los dos, pida a su administrador que restablezca su inicio de sesión.
enter-totp-code = Ingrese el código de 6 dígitos de su aplicación de autenticación. Si la perdió, ingrese uno de sus códigos de recuperación.
lost-passkeys-recovery = Si perdió sus llaves de acceso, ingrese uno de sus códigos de recuperación. Si no tiene ninguno, pida a su administrador que restablezca su inicio de sesión.
code = Código
verify = Verificar

set-up-two-step = Configurar la verificación en dos pasos
two-step-required = Su organización exige un segundo paso al iniciar sesión. Configúrelo ahora para continuar.
totp-step-open-app = Abra una aplicación de autenticación (por ejemplo, FreeOTP, Google Authenticator o Microsoft Authenticator).
totp-step-scan = Escanee este código o ingrese manualmente la clave que aparece abajo.
totp-step-enter = Ingrese el código de 6 dígitos que muestra la aplicación.
totp-qr-alt = Código QR para su aplicación de autenticación
totp-key = Clave:
code-from-app = Código de la aplicación
turn-on-two-step = Activar la verificación en dos pasos

your-recovery-codes = Sus códigos de recuperación
recovery-codes-text = Cada código le permite iniciar sesión una vez si pierde su aplicación de autenticación. Guárdelos en un lugar seguro: no se volverán a mostrar.
saved-them-continue = Ya los guardé — continuar

create-a-passkey = Crear una llave de acceso
passkey-required-intro = Su organización exige una llave de acceso para iniciar sesión: una clave que guarda su dispositivo y que se desbloquea con su huella digital, su rostro o su PIN. Solo funciona en este sitio, así que está protegida contra el phishing.
passkey-name = Nombre de esta llave de acceso
my-passkey = Mi llave de acceso
create-passkey = Crear llave de acceso
creating-passkey-needs-javascript = Para crear una llave de acceso se necesita JavaScript: actívelo para este sitio o consulte a su administrador.

emergency-access = Acceso de emergencia
emergency-asked-by = { $app } solicita acceso de emergencia.
emergency-explained = { $minutes ->
    [one] El acceso de emergencia abre, durante un minuto, registros que normalmente usted no vería. Queda registrado, se avisa de inmediato al contacto de soporte y al responsable de privacidad de su organización, y otro administrador lo revisa. Nunca se prolonga: cuando termine, vuelva a romper el vidrio con un nuevo motivo.
   *[other] El acceso de emergencia abre, durante { $minutes } minutos, registros que normalmente usted no vería. Queda registrado, se avisa de inmediato al contacto de soporte y al responsable de privacidad de su organización, y otro administrador lo revisa. Nunca se prolonga: cuando termine, vuelva a romper el vidrio con un nuevo motivo.
}
patient-or-context = Paciente o contexto
emergency-reason-label = Motivo (de 10 a 500 caracteres)
break-the-glass = Romper el vidrio
continue-without-emergency = Continuar sin acceso de emergencia
emergency-not-designated = No tiene autorización para el acceso de emergencia. Si la necesita, consulte a su administrador.

allow-app = ¿Permitir el acceso a { $app }?
app-asks-to = { $app } solicita permiso para:
what-app-may-do = Lo que { $app } puede hacer. Desmarque lo que no quiera permitir.
needed = (necesario)
consent-remembered = Gatehouse recordará su respuesta para { $app }. Puede retirarla en la página de su cuenta.
allow = Permitir
deny = Denegar

choose-a-patient = Elija un paciente
picker-intro = { $app } solicita abrir la historia clínica de un paciente en { $server }. Busque y seleccione al paciente.
patients-name = Nombre del paciente
search = Buscar
no-patient-by-name = No hay ningún paciente con ese nombre.
patients-named-like = Pacientes con nombre similar a “{ $name }”
born = Fecha de nacimiento
identifier = Identificador
choose-named = Seleccionar a { $name }
password-too-long = La contraseña es demasiado larga.
password-missing = Ingrese una contraseña nueva.
passwords-differ = Las dos contraseñas nuevas no coinciden.
password-too-short = { $min ->
    [one] Use al menos 1 carácter.
   *[other] Use al menos { $min } caracteres.
}
password-over-max = { $max ->
    [one] Use como máximo 1 carácter.
   *[other] Use como máximo { $max } caracteres.
}
password-needs-upper = Agregue una letra mayúscula.
password-needs-lower = Agregue una letra minúscula.
password-needs-digit-or-symbol = Agregue un número o un símbolo.
password-has-username = No use su nombre de usuario en la contraseña.
password-has-email = No use su correo electrónico en la contraseña.
password-too-common = Esta contraseña es demasiado común o fácil de adivinar.
password-reused = { $history ->
    [one] Use una contraseña distinta de la última que usó.
   *[other] Use una contraseña que no haya usado en sus últimas { $history } contraseñas.
}
code-too-long = El código es demasiado largo.
enter-the-code = Ingrese el código de su aplicación de autenticación.
wrong-code = Ese código no es correcto o ya se usó.
enter-code-or-recovery-code = Ingrese el código de 6 dígitos de su aplicación de autenticación o un código de recuperación.
enrol-expired = Se agotó el tiempo de esta configuración. Agregue a su aplicación la clave nueva que aparece abajo e ingrese el código que muestra.
passkey-answer-too-large = La respuesta de la llave de acceso es demasiado grande.
passkey-not-created = El navegador no creó una llave de acceso. Inténtelo de nuevo.
passkey-setup-timed-out = Se agotó el tiempo de esta configuración. Vuelva a crear la llave de acceso.
passkey-not-registered = No se pudo registrar esta llave de acceso. Inténtelo de nuevo o use otra.
passkey-kind-not-allowed = Su organización no permite este tipo de llave de acceso.
passkey-already-or-full = Esta llave de acceso ya está registrada, o la cuenta ya tiene el máximo de llaves de acceso permitido.
passkey-could-not-be-used = No se pudo usar esa llave de acceso. Inténtelo de nuevo o use un código.
passkey-name-missing = Asigne un nombre a la llave de acceso.
passkey-name-too-long = El nombre de una llave de acceso puede tener como máximo 64 caracteres, sin caracteres de control.
choose-an-action = Elija una acción.
emergency-refused-not-designated = No tiene autorización para el acceso de emergencia. Consulte a su administrador.
emergency-refused-no-second-factor = El acceso de emergencia requiere iniciar sesión con su segundo factor. Cierre sesión y vuelva a iniciarla con él.
emergency-reason-too-short = { $min ->
    [one] El motivo debe tener al menos 1 carácter.
   *[other] El motivo debe tener al menos { $min } caracteres.
}
emergency-reason-too-long = { $max ->
    [one] El motivo debe tener como máximo 1 carácter.
   *[other] El motivo debe tener como máximo { $max } caracteres.
}
emergency-reason-characters = El motivo puede contener palabras y signos de puntuación, no caracteres de control.
emergency-refused-context = Elija uno de los contextos que ofreció la aplicación.
emergency-refused-open = El acceso de emergencia ya está abierto en esta sesión, hasta las { $until }. Nunca se prolonga: cuando termine, vuelva a romper el vidrio con un nuevo motivo.
emergency-refused-inactive = Esta cuenta no puede usar el acceso de emergencia.
sign-in-refused = Inicio de sesión rechazado
upstream-account-inactive = Esta cuenta no puede iniciar sesión. Consulte a su administrador.
upstream-did-not-identify = El proveedor de identidad de su organización no indicó quién es usted (se necesitan un nombre de usuario y un correo electrónico). Consulte a su administrador.
your-identity-provider = el proveedor de identidad de su organización
upstream-unknown = Opción de inicio de sesión no disponible
upstream-unknown-text = Esta forma de iniciar sesión no existe o está desactivada. Inicie sesión de otra forma o consulte a su administrador.
upstream-unreachable = No se pudo conectar con su organización
upstream-unreachable-text = No se pudo conectar con { $name }. Vuelva a intentarlo en unos minutos o inicie sesión de otra forma.
upstream-denied = No se inició sesión
upstream-denied-text = No se pudo iniciar sesión con { $name }. Empiece de nuevo para volver a intentarlo.
upstream-rejected-text = No se pudo confiar en la respuesta de { $name }, por lo que no se inició su sesión. Empiece de nuevo; si vuelve a ocurrir, avise a su administrador.
link-not-linked-yet = Inicie sesión una vez con su cuenta existente para vincularla.
link-account-exists = Ya existe una cuenta con su nombre o correo electrónico. Inicie sesión con ella una vez para vincularla.
enter-username-or-email = Ingrese su nombre de usuario o el correo electrónico de su cuenta.
check-your-email = Revise su correo electrónico
reset-link-sent = { $minutes ->
    [one] Si hay una cuenta que coincide con lo que ingresó, se está enviando al correo electrónico de la cuenta un enlace para elegir una contraseña nueva. Funciona una sola vez y es válido por un minuto; si solicita otro, este deja de funcionar. ¿No llegó nada? Revise su carpeta de correo no deseado o consulte a su administrador.
   *[other] Si hay una cuenta que coincide con lo que ingresó, se está enviando al correo electrónico de la cuenta un enlace para elegir una contraseña nueva. Funciona una sola vez y es válido por { $minutes } minutos; si solicita otro, este deja de funcionar. ¿No llegó nada? Revise su carpeta de correo no deseado o consulte a su administrador.
}
link-invalid = Este enlace no es válido o venció
reset-link-invalid = Un enlace de restablecimiento funciona una sola vez, durante un tiempo limitado, y solo funciona el más reciente que se le envió; cambiar su contraseña también lo anula. Solicite un enlace nuevo.
ask-for-new-link = Solicitar un enlace nuevo
invitation-link-invalid = Un enlace de invitación funciona una sola vez, durante un tiempo limitado, y solo funciona el más reciente que se le envió. Pida a su administrador una invitación nueva.
go-to-sign-in = Ir a iniciar sesión
password-set = Se estableció su contraseña
password-set-text = Inicie sesión con su contraseña nueva. Se cerraron todas las sesiones de su cuenta.
account-ready = Su cuenta está lista
account-ready-text = Inicie sesión con su nombre de usuario y la contraseña que eligió.
# What a scope lets an app do (src/pages/mod.rs, scope_words). $resource is the FHIR
# resource type (Observation); $words is it in English words (observations), which
# Spanish does not use.
scope-clinical = { $verbs } { $whose }
scope-limited = { $text } (solo algunos)
scope-create = crear
scope-read = leer
scope-update = actualizar
scope-delete = eliminar
scope-search = buscar
list-and = { $rest } y { $last }
scope-patient-all = todos los registros del paciente
scope-user-all = todos los registros que usted puede ver
scope-system-all = todos los registros
scope-patient-resource = los registros { $resource } del paciente
scope-user-resource = los registros { $resource } que usted puede ver
scope-system-resource = todos los registros { $resource }
scope-launch = Abrir el paciente y la atención que tiene abiertos en su historia clínica electrónica
scope-launch-patient = Saber de qué paciente abrir la historia clínica
scope-launch-encounter = Saber qué atención abrir
scope-fhir-user = Saber quién es usted en el registro clínico
scope-openid = Saber que fue usted quien inició sesión
scope-profile = Ver su nombre y su nombre de usuario
scope-email = Ver su correo electrónico
scope-offline-access = Mantener el acceso después de que cierre sesión, hasta que usted lo retire
scope-online-access = Mantener el acceso mientras tenga la sesión iniciada
scope-other = Usar “{ $scope }”
consent-expired = Esta pregunta venció
consent-expired-text = Tardó demasiado en responder, o la pregunta se abrió en otro navegador. Vuelva a abrir la aplicación.
form-too-large = El formulario es demasiado grande.
pick-expired = Esta selección venció
pick-expired-text = La selección del paciente tardó demasiado, o se inició en otro navegador. Vuelva a abrir la aplicación.
pick-name-length = Escriba de 2 a 100 letras del nombre del paciente.
pick-search-failed = El servidor FHIR no respondió a la búsqueda. Inténtelo de nuevo.
pick-from-results = Elija un paciente de los resultados de la búsqueda.
sign-out-question = ¿Cerrar sesión?
sign-out-refused = Cierre de sesión rechazado
still-signed-in = Todavía tiene la sesión iniciada en Gatehouse
sign-out-refused-text = La aplicación pidió a Gatehouse que cerrara su sesión, y Gatehouse se negó: { $reason }
sign-out-refused-next = Al volver a la aplicación, esta sabrá que su sesión no se cerró. Para terminar su sesión de Gatehouse, cierre sesión en Gatehouse.
return-to-app = Volver a la aplicación
sign-out-of-gatehouse = Cerrar sesión en Gatehouse
returning-to-app = Regresando a la aplicación…
skip-silent-app = Esta aplicación no responde: continuar el cierre de sesión sin ella
sign-in-link-invalid = Este enlace de inicio de sesión no es válido
# A protocol's refusal, in its own (English) words, for the application's developer.
protocol-refusal = La aplicación envió una solicitud que Gatehouse no acepta: { $detail }
app-not-for-you = Esta aplicación no está disponible para usted
app-not-for-you-text = La aplicación desde la que llegó no está abierta a los usuarios de su organización, por lo que Gatehouse no inició su sesión en ella. Si cree que debería tener acceso, consulte a su administrador.
sign-out-link-invalid = Este enlace de cierre de sesión no es válido
sign-out-message-invalid = Este mensaje de cierre de sesión no es válido
sign-out-request-invalid = Esta solicitud de cierre de sesión no es válida
sign-in-request-invalid = Esta solicitud de inicio de sesión no es válida
